// Force-included in the fuzz build only (clang). Debian's ITK 5.2 headers
// were generated for GCC alone: itk_compiler_detection.h stops with
// "Unsupported compiler" under clang. Reading that header once with
// __clang__ hidden (and -fgnuc-version set to Debian's GCC, so its GNU branch
// accepts the version) gives the macros GCC builds see; its include guard
// then keeps ITK from reading it again. Translation units without ITK on
// their include path are not affected.
#if defined(__cplusplus) && defined(__clang__) && __has_include(<itk_compiler_detection.h>)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wbuiltin-macro-redefined"
#pragma push_macro("__clang__")
#undef __clang__
#include <itk_compiler_detection.h>
#pragma pop_macro("__clang__")
#pragma clang diagnostic pop
#endif
