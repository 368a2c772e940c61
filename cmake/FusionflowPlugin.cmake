# fusionflow_add_plugin(NAME SOURCES src... [LINK libs...] [ITK] [VTK]
#                       [OUTPUT_DIRECTORY dir] [NO_INSTALL])
#
# Builds a node family as a fusionflow plugin: a MODULE library named
# fusionflow-<NAME>.so with hidden visibility (only the descriptor entry point
# is exported), linked to the SDK, placed in the plugin directory of the build
# tree and installed into the installation's plugin directory. ITK / VTK
# record the versions the plugin is built against in its descriptor, which the
# host checks before loading it.
#
# This file is installed with the SDK, so out-of-tree plugins use the same
# function after find_package(fusionflow).
function(fusionflow_add_plugin name)
  cmake_parse_arguments(PLUGIN "ITK;VTK;NO_INSTALL" "OUTPUT_DIRECTORY" "SOURCES;LINK" ${ARGN})
  if(NOT PLUGIN_SOURCES)
    message(FATAL_ERROR "fusionflow_add_plugin(${name}): SOURCES is required")
  endif()
  set(target fusionflow-plugin-${name})
  add_library(${target} MODULE ${PLUGIN_SOURCES})
  if(TARGET fusionflow::fusionflow)
    target_link_libraries(${target} PRIVATE fusionflow::fusionflow)
  else()
    target_link_libraries(${target} PRIVATE fusionflow)
  endif()
  target_link_libraries(${target} PRIVATE ${PLUGIN_LINK})
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME fusionflow-${name}
    PREFIX "lib"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  if(PLUGIN_ITK)
    target_compile_definitions(${target} PRIVATE
      FUSIONFLOW_PLUGIN_ITK_VERSION="${ITK_VERSION_MAJOR}.${ITK_VERSION_MINOR}.${ITK_VERSION_PATCH}")
  endif()
  if(PLUGIN_VTK)
    target_compile_definitions(${target} PRIVATE FUSIONFLOW_PLUGIN_VTK_VERSION="${VTK_VERSION}")
  endif()
  # Unresolved symbols are errors at link time, not at dlopen time (except in
  # clang sanitizer builds, whose runtime lives in the executable).
  if(NOT FUSIONFLOW_FUZZ)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
  if(PLUGIN_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${PLUGIN_OUTPUT_DIRECTORY}")
  elseif(DEFINED FUSIONFLOW_PLUGIN_OUTPUT_DIR)
    # Inside the fusionflow tree: next to the bundled plugins.
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${FUSIONFLOW_PLUGIN_OUTPUT_DIR}")
  endif()
  if(NOT PLUGIN_NO_INSTALL)
    if(NOT DEFINED FUSIONFLOW_PLUGIN_INSTALL_DIR)
      include(GNUInstallDirs)
      set(FUSIONFLOW_PLUGIN_INSTALL_DIR "${CMAKE_INSTALL_LIBDIR}/fusionflow/plugins")
    endif()
    install(TARGETS ${target} LIBRARY DESTINATION "${FUSIONFLOW_PLUGIN_INSTALL_DIR}")
  endif()
  set(FUSIONFLOW_LAST_PLUGIN_TARGET ${target} PARENT_SCOPE)
endfunction()
