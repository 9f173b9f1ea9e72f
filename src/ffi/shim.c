/* See shim.h. Each function forwards to one DPDK static inline or macro. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include "shim.h"

uint16_t pmdlb_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_rx_burst(port, queue, pkts, n); }
uint16_t pmdlb_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{ return rte_eth_tx_burst(port, queue, pkts, n); }
struct rte_mbuf *pmdlb_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int pmdlb_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }
void pmdlb_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *pmdlb_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *pmdlb_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *pmdlb_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int pmdlb_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
int pmdlb_errno(void) { return rte_errno; }
unsigned pmdlb_lcore_id(void) { return rte_lcore_id(); }
uint64_t pmdlb_tsc_hz(void) { return rte_get_tsc_hz(); }
unsigned pmdlb_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned pmdlb_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{ return rte_ring_enqueue_burst(r, objs, n, NULL); }
unsigned pmdlb_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{ return rte_ring_dequeue_burst(r, objs, n, NULL); }

/* Values src/dpdk mirrors as Rust constants (function-like macros bindgen
 * cannot evaluate): the build fails here if DPDK ever changes them. */
_Static_assert(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "dpdk::port::RX_OFFLOAD_IPV4_CKSUM");
_Static_assert(RTE_MBUF_F_RX_IP_CKSUM_MASK == ((1ULL << 4) | (1ULL << 7)), "dpdk::mbuf::RX_IP_CKSUM_MASK");
_Static_assert(RTE_MBUF_F_RX_IP_CKSUM_GOOD == (1ULL << 7), "dpdk::mbuf::RX_IP_CKSUM_GOOD");
