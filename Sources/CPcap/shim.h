#ifndef WIREBEAT_CPCAP_SHIM_H
#define WIREBEAT_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
