/* CSupport is header-only (static inline functions in include/CSupport.h); SwiftPM wants one
   source file in a C target. */
#include "CSupport.h"
