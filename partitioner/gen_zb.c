/* partitioner/gen_zb.c — zero-bubble schedules (Qi et al., ICLR 2024) with the backward split
 * into BWD_INPUT ("B", on the critical path) and BWD_WEIGHT ("W", deferrable).
 *
 * ZB-H1: 1F1B's placement (rank r holds stage r) and 1F1B's memory: rank r holds at most D-r
 * stashed micro-batches (counting until W). The order comes from list scheduling
 * (list_sched.c) with F = B = W = 1: an idle rank runs a ready B first, then a forward if under
 * its cap, else a deferred W, which fills what would be 1F1B's bubbles.
 *
 * ZB-V: 2D stages in a V: rank r holds stage r (chunk 0) and stage 2D-1-r (chunk 1), so the
 * turn is on rank D-1 and the loss on rank 0. Each rank may stash 2D chunk activations (D full
 * stages, 1F1B's peak on rank 0); same list-scheduling policy.
 *
 * The orders are derived with unit durations; any costs replay them validly. Any D >= 1,
 * N >= 1. */
#include "partitioner/list_sched.h"
#include "partitioner/schedule.h"

#include <stdlib.h>

static int run(bp_program *out, const int *cap, char *err, size_t errlen) {
  int D = out->D, N = out->N, S = out->n_stages, rc;
  bp_ls_list *fl = calloc(D, sizeof *fl), *bl = calloc(D, sizeof *bl);
  if (!fl || !bl || bp_ls_lists_alloc(fl, D, N * out->chunks_per_rank)) {
    free(fl), free(bl);
    return bp_sched_errf(err, errlen, "%s: out of memory", out->schedule);
  }
  if (bp_ls_lists_alloc(bl, D, N * out->chunks_per_rank)) {
    bp_ls_lists_free(fl, D);
    free(fl), free(bl);
    return bp_sched_errf(err, errlen, "%s: out of memory", out->schedule);
  }
  /* preference: older micro-batches first; among one micro-batch's chunks, the later stage
   * first for backwards (that is the order they become ready in) */
  for (int m = 0; m < N; m++)
    for (int s = 0; s < S; s++) bp_ls_put(&fl[out->stage_rank[s]], m, s);
  for (int m = 0; m < N; m++)
    for (int s = S - 1; s >= 0; s--) bp_ls_put(&bl[out->stage_rank[s]], m, s);
  bp_ls_spec spec = {1, 1, 1, cap, 0, 0, 0, fl, bl};
  rc = bp_list_schedule(out, &spec, err, errlen);
  bp_ls_lists_free(fl, D);
  bp_ls_lists_free(bl, D);
  free(fl), free(bl);
  return rc;
}

static int check(const bp_sched_params *sp, const char *name, char *err, size_t errlen) {
  if (sp->D < 1 || sp->N < 1)
    return bp_sched_errf(err, errlen, "%s: needs D >= 1 and N >= 1 (got D=%d N=%d)", name, sp->D,
                         sp->N);
  return 0;
}

int bp_gen_zb_h1(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  if (check(sp, "zb-h1", err, errlen)) return -1;
  if (sp->chunks > 1)
    return bp_sched_errf(err, errlen, "zb-h1: one chunk per rank (got --chunks %d)", sp->chunks);
  int D = sp->D, split = 1;
  if (bp_program_init(out, "zb-h1", D, sp->N, D, 1, 1, split, err, errlen)) return -1;
  int *cap = malloc(sizeof(int) * D);
  if (!cap) return bp_sched_errf(err, errlen, "zb-h1: out of memory");
  for (int r = 0; r < D; r++) {
    cap[r] = D - r;
    if (bp_program_place(out, r, 0, 0, r, err, errlen)) {
      free(cap);
      return -1;
    }
  }
  int rc = run(out, cap, err, errlen);
  free(cap);
  return rc;
}

int bp_gen_zb_v(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  if (check(sp, "zb-v", err, errlen)) return -1;
  if (sp->chunks && sp->chunks != 2)
    return bp_sched_errf(err, errlen, "zb-v: 2 chunks per rank (got --chunks %d)", sp->chunks);
  int D = sp->D;
  if (bp_program_init(out, "zb-v", D, sp->N, 2 * D, 1, 2, 1, err, errlen)) return -1;
  int *cap = malloc(sizeof(int) * D);
  if (!cap) return bp_sched_errf(err, errlen, "zb-v: out of memory");
  for (int r = 0; r < D; r++) {
    cap[r] = 2 * D;
    if (bp_program_place(out, r, 0, 0, r, err, errlen) ||
        bp_program_place(out, r, 1, 0, 2 * D - 1 - r, err, errlen)) {
      free(cap);
      return -1;
    }
  }
  int rc = run(out, cap, err, errlen);
  free(cap);
  return rc;
}
