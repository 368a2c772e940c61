// Force-included in the fuzz build only (clang). Debian's ITK 5.2 headers
// were generated for GCC alone: itk_compiler_detection.h stops with
// "Unsupported compiler" under clang. Reading that header once while clang
// passes for Debian's GCC 12 (__clang__ hidden, __GNUC__ raised from the 4.2
// clang claims, which ITK's GNU branch also refuses) gives the macros GCC
// builds see; its include guard then keeps ITK from reading it again. Only
// that header sees the changed macros, and translation units without ITK on
// their include path are not affected.
#if defined(__cplusplus) && defined(__clang__) && __has_include(<itk_compiler_detection.h>)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wbuiltin-macro-redefined"
#pragma clang diagnostic ignored "-Wmacro-redefined"
#pragma push_macro("__clang__")
#pragma push_macro("__GNUC__")
#pragma push_macro("__GNUC_MINOR__")
#undef __clang__
#undef __GNUC__
#undef __GNUC_MINOR__
#define __GNUC__ 12
#define __GNUC_MINOR__ 2
#include <itk_compiler_detection.h>
#pragma pop_macro("__GNUC_MINOR__")
#pragma pop_macro("__GNUC__")
#pragma pop_macro("__clang__")
#pragma clang diagnostic pop
#endif
