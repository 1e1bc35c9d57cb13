#ifndef WIREBEAT_CSUPPORT_H
#define WIREBEAT_CSUPPORT_H

/* What Swift has no spelling of. Inline: Swift's Clang importer compiles these into the
   caller, so they cost what the instruction costs. */

/* Asks for the cache line at `p` to be loaded (for reading, into every level) without
   waiting for it. A worker reads each batch of packets the reader wrote on another core:
   asked for ahead, those lines arrive while it handles the packet before. */
static inline void wirebeat_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
