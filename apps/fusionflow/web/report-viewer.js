// The run report's slice viewer (apps/fusionflow/run_report.cpp inlines this
// file after NiiVue's bundle and the viewer data). The volumes come from
// viz.report_volumes: the first is the background, one other at a time is the
// overlay. window.fusionflowViewer tells tests (and curious readers) its state.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('viewer-data').textContent);
  const state = { ready: false, error: null, overlay: -1, volumes: data.volumes.length };
  window.fusionflowViewer = state;
  const byId = (id) => document.getElementById(id);

  function showError(error) {
    state.error = String(error);
    byId('viewer-location').textContent = 'The viewer could not start: ' + state.error;
    console.error('fusionflow viewer:', error);
  }

  async function start() {
    const nv = new niivue.Niivue({
      backColor: [0, 0, 0, 1],
      show3Dcrosshair: true,
      isColorbar: false,
      dragMode: 1, // contrast: right-drag changes the window
      loadingText: 'loading the volumes',
    });
    state.nv = nv;
    await nv.attachTo('viewer-canvas');
    const images = [];
    for (let i = 0; i < data.volumes.length; ++i) {
      const volume = data.volumes[i];
      const image = await niivue.NVImage.loadFromBase64({
        base64: volume.nifti_base64,
        name: volume.file,
        colormap: volume.colormap,
        cal_min: volume.cal_min,
        cal_max: volume.cal_max,
        opacity: i === 0 ? 1 : 0,
      });
      nv.addVolume(image);
      images.push(image);
    }
    nv.setSliceType(nv.sliceTypeMultiplanar);

    // The first PET-like overlay (a hot colour map) is shown at first, else the last volume.
    let overlay = data.volumes.findIndex((v, i) => i > 0 && v.colormap !== 'gray');
    if (overlay < 0 && data.volumes.length > 1) overlay = data.volumes.length - 1;

    const overlaySelect = byId('viewer-overlay');
    overlaySelect.add(new Option('none', '-1'));
    data.volumes.forEach((v, i) => {
      if (i > 0) overlaySelect.add(new Option(v.label, String(i)));
    });
    const opacity = byId('viewer-opacity');
    const windowLayer = byId('viewer-window-layer');
    const calMin = byId('viewer-cal-min');
    const calMax = byId('viewer-cal-max');

    function windowTarget() {
      return windowLayer.value === 'overlay' && state.overlay > 0 ? images[state.overlay] : images[0];
    }
    function showWindow() {
      const image = windowTarget();
      calMin.value = Number(image.cal_min.toPrecision(5));
      calMax.value = Number(image.cal_max.toPrecision(5));
    }
    function setOverlay(index) {
      state.overlay = index;
      images.forEach((image, i) => {
        if (i > 0) nv.setOpacity(i, i === index ? Number(opacity.value) : 0);
      });
      overlaySelect.value = String(index);
      showWindow();
    }
    overlaySelect.addEventListener('change', () => setOverlay(Number(overlaySelect.value)));
    opacity.addEventListener('input', () => setOverlay(state.overlay));
    windowLayer.addEventListener('change', showWindow);
    function applyWindow() {
      const low = Number(calMin.value), high = Number(calMax.value);
      if (!Number.isFinite(low) || !Number.isFinite(high) || !(high > low)) return;
      const image = windowTarget();
      image.cal_min = low;
      image.cal_max = high;
      nv.updateGLVolume();
    }
    calMin.addEventListener('change', applyWindow);
    calMax.addEventListener('change', applyWindow);
    byId('viewer-layout').addEventListener('change', (event) => {
      const layouts = {
        multiplanar: nv.sliceTypeMultiplanar, axial: nv.sliceTypeAxial, coronal: nv.sliceTypeCoronal,
        sagittal: nv.sliceTypeSagittal, render: nv.sliceTypeRender,
      };
      nv.setSliceType(layouts[event.target.value]);
    });
    nv.onLocationChange = (location) => {
      state.location = location.vox;
      byId('viewer-location').textContent = location.string;
    };
    nv.onIntensityChange = () => showWindow();
    setOverlay(overlay);
    state.ready = true;
  }
  start().catch(showError);
})();
