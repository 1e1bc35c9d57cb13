#ifndef WIREBEAT_CSUPPORT_H
#define WIREBEAT_CSUPPORT_H

/* What Swift has no spelling of. Inline: Swift's Clang importer compiles these into the
   caller, so they cost what the instruction costs. */

/* Asks for the cache line at `p` to be loaded (for reading, into every level) without
   waiting for it. A worker reads each batch of packets the reader wrote on another core:
   asked for ahead, those lines arrive while it handles the packet before. */
static inline void wirebeat_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#include <stdio.h>
#if defined(__GLIBC__)
#include <stdio_ext.h>
#endif

/* The stream `f` is used by one thread at a time, which the caller sees to: stdio stops
   locking it around each call. Once a process has a second thread, glibc locks a stream
   in every fread, and libpcap reads a capture with two freads a packet. */
static inline void wirebeat_stream_unlocked(FILE *f) {
#if defined(__GLIBC__)
    __fsetlocking(f, FSETLOCKING_BYCALLER);
#else
    (void)f;
#endif
}

#endif
