/* partitioner/rendezvous.h — (internal) executes a bp_program's communication under blocking
 * (rendezvous) point-to-point semantics, to prove it free of deadlock or find where it stops.
 * Shared by the validator (validate.c) and the lowering pass (lower.c), which uses the stopping
 * point to delay sends until the program runs through. */
#ifndef BITPIPE_RENDEZVOUS_H
#define BITPIPE_RENDEZVOUS_H

#include "partitioner/schedule.h"

typedef struct bp_rdv {
  int D;
  int *off;           /* [D+1]: instruction i of rank r is global id off[r] + i */
  int *partner;       /* [total]: global id of the matching send/recv; -1 for others */
  int *bstart, *bend; /* [total]: the batch holding i is [bstart, bend) in its rank's list */
  int *pc;            /* [D]: after bp_rdv_run, where each rank stopped (n when finished) */
  uint8_t *done;      /* [total]: p2p instruction completed */
} bp_rdv;

/* Pairs every send with its receive (by kind, micro-batch and receiving stage). Fails, naming
 * rank and instruction, on a duplicate or an unmatched message. Expects the structure checks of
 * the validator to hold (fields in range). */
int bp_rdv_init(bp_rdv *x, const bp_program *p, char *err, size_t errlen);
void bp_rdv_free(bp_rdv *x);
/* Runs every rank as far as it can. Returns the number of ranks that did not finish (0: no
 * deadlock); -1 on allocation failure. */
int bp_rdv_run(bp_rdv *x, const bp_program *p);
/* Whether instruction i of rank r is a send that is posted but not matched, because its
 * receiver has not posted the receive (valid after bp_rdv_run). */
int bp_rdv_send_waiting(const bp_rdv *x, const bp_program *p, int r, int i);

#endif
