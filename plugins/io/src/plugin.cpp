// The io plugin: modality loaders and the volume writer.
#include "io_internal.hpp"

FUSIONFLOW_PLUGIN("io", "1.0.0",
                  "Modality loaders (CT in HU, MRI with N4/normalisation, PET in Bq/mL or SUVbw) from NIfTI, NRRD, "
                  "MetaImage, PNG and DICOM, the writers (NIfTI, NRRD, MetaImage, PNG, JPEG, DICOM series) and DICOM "
                  "server nodes (C-FIND, C-GET, C-STORE)") {
  using namespace fusionflow::io;
  registrar.add_node(load_ct_node(), run_load_ct);
  registrar.add_node(load_mri_node(), run_load_mri);
  registrar.add_node(load_pet_node(), run_load_pet);
  registrar.add_node(load_image_node(), run_load_image);
  registrar.add_node(write_node(), run_write);
  registrar.add_node(load_color_node(), run_load_color);
  registrar.add_node(write_color_node(), run_write_color);
  registrar.add_node(write_dicom_node(false), run_write_dicom);
  registrar.add_node(write_dicom_node(true), run_write_dicom_color);
  disable_nagle_for_dicom();
  registrar.add_node(pacs_find_node(), run_pacs_find);
  registrar.add_node(pacs_load_ct_node(), run_pacs_load_ct);
  registrar.add_node(pacs_load_mri_node(), run_pacs_load_mri);
  registrar.add_node(pacs_load_pet_node(), run_pacs_load_pet);
  registrar.add_node(pacs_load_image_node(), run_pacs_load_image);
  registrar.add_node(pacs_store_node(), run_pacs_store);
  // --threads caps ITK's pool (N4, readers) as well as the graph.
  registrar.add_thread_budget_hook([](int threads) { set_itk_threads(threads); });
}
