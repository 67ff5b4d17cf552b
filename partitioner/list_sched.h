/* partitioner/list_sched.h — (internal) compute orders by list scheduling; see list_sched.c. */
#ifndef BITPIPE_LIST_SCHED_H
#define BITPIPE_LIST_SCHED_H

#include "partitioner/schedule.h"

/* A rank's preference order over its forwards or backwards: entries (mb[i], stage[i]). */
typedef struct bp_ls_list {
  int n;
  int *mb, *stage;
} bp_ls_list;

typedef struct bp_ls_spec {
  double f, b, w;        /* nominal chunk durations: forward, input-gradient, weight-gradient
                            (without split, a backward takes b + w) */
  const int *cap;        /* [D] most stashed chunk activations a rank may hold; NULL: no cap */
  int unit;              /* >0: micro-batches come in units of this size (m / unit); a forward of
                            a later unit than the oldest one with forwards pending on the rank
                            runs only if the stash plus those pending forwards stays under cap */
  int inflight;          /* most micro-batches of one pipe between their first forward and
                            their last backward (admission control); 0: no limit */
  int bwd_strict;        /* backwards run strictly in list order (else: first ready) */
  const bp_ls_list *fwd; /* [D] forwards in preference order (every forward of the rank) */
  const bp_ls_list *bwd; /* [D] backwards (BWD or BWD_INPUT) in preference order */
} bp_ls_spec;

/* Appends to every rank of p (placed, mb_pipe set) its compute order. */
int bp_list_schedule(bp_program *p, const bp_ls_spec *spec, char *err, size_t errlen);

/* Helpers for building lists. */
int bp_ls_lists_alloc(bp_ls_list *l, int D, int per_rank);
void bp_ls_lists_free(bp_ls_list *l, int D);
static inline void bp_ls_put(bp_ls_list *l, int mb, int stage) {
  l->mb[l->n] = mb, l->stage[l->n] = stage, l->n++;
}

#endif
