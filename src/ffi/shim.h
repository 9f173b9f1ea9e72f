/* C wrappers for DPDK's static inline functions and macros that pmdlb calls
 * at most once per burst (or on the control path). Per-packet helpers such as
 * the mbuf data pointer and prefetch are reimplemented in Rust instead. */
#ifndef PMDLB_SHIM_H
#define PMDLB_SHIM_H
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

uint16_t pmdlb_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t pmdlb_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *pmdlb_pktmbuf_alloc(struct rte_mempool *mp);
int pmdlb_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void pmdlb_pktmbuf_free(struct rte_mbuf *m);
char *pmdlb_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *pmdlb_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *pmdlb_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int pmdlb_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int pmdlb_errno(void);
unsigned pmdlb_lcore_id(void);
uint64_t pmdlb_tsc_hz(void);
unsigned pmdlb_ring_count(const struct rte_ring *r);
unsigned pmdlb_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned pmdlb_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
#endif
