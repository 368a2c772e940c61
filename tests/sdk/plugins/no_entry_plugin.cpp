// A shared library that is not a fusionflow plugin.
extern "C" __attribute__((visibility("default"))) int some_other_function() { return 7; }
