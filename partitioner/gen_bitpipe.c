/* partitioner/gen_bitpipe.c — BitPipe (Wu, Chen, Yu 2024): two V-shaped interleaved pipelines
 * in opposite directions. See /work/shared/bitpipe-schedule.md (section 1) for the source.
 *
 * The model is cut into 2D stages. Rank d holds four chunks:
 *   c0 = DOWN stage d          (first half, going out over ranks 0..D-1)
 *   c2 = DOWN stage 2D-1-d     (second half, coming back over ranks D-1..0; loss on rank 0)
 *   c1 = UP   stage D-1-d      (first half, over ranks D-1..0)
 *   c3 = UP   stage D+d        (second half, over ranks 0..D-1; loss on rank D-1)
 * so each pipe turns on one rank (DOWN on D-1: c0 -> c2, UP on 0: c1 -> c3) with a local
 * hand-over, and stage s has replicas on ranks r and D-1-r, all-reduced between the pair.
 * Micro-batch m goes DOWN if m mod D < D/2, else UP; each direction reads its own data
 * (mb_sample[m] = m, unlike the authors' code, which feeds both directions the same samples).
 *
 * "bitpipe" is the authors' order exactly (bitpipe_schedule.py at 6fb0e22f): per unit of D
 * micro-batches a forward list Fl and a backward list Bl, a warm-up of W = 3D/2 + min(r, D-1-r)
 * forwards, and the units concatenated by the code's n_loop phases. The gradient syncs sit where
 * the code puts them: SYNC23 (chunks 2, 3) just before the last backward, or after all
 * backwards on the middle pair; SYNC01 (chunks 0, 1) last. They are started there and, unlike
 * the code's blocking calls, waited for just before the optimizer step.
 *
 * "bitpipe-steady" runs the same Fl and Bl over all N micro-batches as one continuous stream:
 * the same W warm-up forwards, then strictly one forward and one backward, then the remaining
 * backwards. It never holds more than W+1 stashed chunk activations, the same peak as the
 * authors' order, and drops the partial cooldown and re-warm-up the code runs at every unit
 * boundary (which costs D-2 idle chunk-units per extra unit when backward = 2 x forward). Its
 * all-reduces start eagerly, after each chunk's last backward.
 *
 * Requires D even (>= 2) and N % D == 0. */
#include "partitioner/schedule.h"

#include <stdlib.h>

enum { SYNC23 = -2, SYNC01 = -3 }; /* markers in the backward list (chunk field) */

typedef struct {
  int op, chunk, mb;
} entry;

typedef struct {
  entry *e;
  int n;
} list;

static void put(list *l, int op, int chunk, int mb) { l->e[l->n++] = (entry){op, chunk, mb}; }

/* Forward (fwd = 1) or backward order of group g on rank r: the code's get_microbatch_idx /
 * get_bkmicrobatch_idx in own/other form (bitpipe-schedule.md §1.5). */
static void group_order(list *l, int D, int r, int g, int fwd) {
  int h = D / 2, mn = r < D - 1 - r ? r : D - 1 - r, ni = h - mn;
  int own_down = r < h;
  int p0 = g * D + (own_down ? 0 : h), q0 = g * D + (own_down ? h : 0); /* p_i = p0+i */
  int P1 = own_down ? 0 : 1, P2 = own_down ? 2 : 3, Q1 = own_down ? 1 : 0, Q2 = own_down ? 3 : 2;
  int op = fwd ? BP_OP_FWD : BP_OP_BWD;
  if (!fwd) { /* backward: c -> (c+2) % 4 */
    P1 = (P1 + 2) % 4, P2 = (P2 + 2) % 4, Q1 = (Q1 + 2) % 4, Q2 = (Q2 + 2) % 4;
  }
  for (int i = 0; i < ni; i++) put(l, op, P1, p0 + i);
  for (int i = 0; i < h - ni; i++) put(l, op, Q1, q0 + i), put(l, op, P1, p0 + i + ni);
  for (int i = 0; i < ni; i++) put(l, op, Q1, q0 + i + h - ni), put(l, op, Q2, q0 + i);
  for (int i = 0; i < h - ni; i++) put(l, op, P2, p0 + i), put(l, op, Q2, q0 + i + ni);
  for (int i = 0; i < ni; i++) put(l, op, P2, p0 + i + h - ni);
}

static int setup(const bp_sched_params *sp, const char *name, bp_program *out, char *err,
                 size_t errlen) {
  int D = sp->D, N = sp->N;
  if (D < 2 || D % 2 != 0)
    return bp_sched_errf(err, errlen, "%s: D must be even and >= 2 (got D=%d)", name, D);
  if (N < D || N % D != 0)
    return bp_sched_errf(err, errlen,
                         "%s: N must be a positive multiple of D (units of D/2 micro-batches per "
                         "direction); got N=%d D=%d",
                         name, N, D);
  if (sp->chunks && sp->chunks != 4)
    return bp_sched_errf(err, errlen, "%s: always 4 chunks per rank (got --chunks %d)", name,
                         sp->chunks);
  if (bp_program_init(out, name, D, N, 2 * D, 2, 4, 0, err, errlen)) return -1;
  for (int d = 0; d < D; d++)
    if (bp_program_place(out, d, 0, 0, d, err, errlen) ||
        bp_program_place(out, d, 1, 1, D - 1 - d, err, errlen) ||
        bp_program_place(out, d, 2, 0, 2 * D - 1 - d, err, errlen) ||
        bp_program_place(out, d, 3, 1, D + d, err, errlen))
      return -1;
  for (int m = 0; m < N; m++) out->mb_pipe[m] = (m % D) < D / 2 ? 0 : 1;
  return 0;
}

/* Emits one list entry; a sync marker becomes the ALLREDUCE_STARTs of its two chunks, in the
 * code's order (c2,c3 / c0,c1 on r < D/2; reversed on the others). */
static int emit_entry(bp_program *out, int r, const entry *x, char *err, size_t errlen) {
  if (x->chunk >= 0) return bp_program_emit(out, r, (bp_op)x->op, x->chunk, x->mb, -1, 0, err, errlen);
  int a = x->chunk == SYNC23 ? 2 : 0, b = a + 1;
  if (r >= out->D / 2) a ^= 1, b ^= 1;
  return bp_program_emit(out, r, BP_OP_ALLREDUCE_START, a, -1, -1, 0, err, errlen) ||
         bp_program_emit(out, r, BP_OP_ALLREDUCE_START, b, -1, -1, 0, err, errlen);
}

static int generate(const bp_sched_params *sp, int steady, bp_program *out, char *err,
                    size_t errlen) {
  const char *name = steady ? "bitpipe-steady" : "bitpipe";
  if (setup(sp, name, out, err, errlen)) return -1;
  int D = sp->D, N = sp->N, G = N / D, h = D / 2;
  list Fl = {malloc(sizeof(entry) * 2 * N), 0}, Bl = {malloc(sizeof(entry) * (2 * N + 2)), 0};
  int rc = 0;
  if (!Fl.e || !Bl.e) rc = bp_sched_errf(err, errlen, "%s: out of memory", name);
  for (int r = 0; r < D && rc == 0; r++) {
    Fl.n = Bl.n = 0;
    for (int g = 0; g < G; g++) group_order(&Fl, D, r, g, 1), group_order(&Bl, D, r, g, 0);
    if (!steady) { /* the code's sync markers (l.238-243) */
      if (r == h || r == h - 1) {
        put(&Bl, BP_OP_ALLREDUCE_START, SYNC23, -1);
      } else {
        Bl.e[Bl.n] = Bl.e[Bl.n - 1];
        Bl.e[Bl.n - 1] = (entry){BP_OP_ALLREDUCE_START, SYNC23, -1};
        Bl.n++;
      }
      put(&Bl, BP_OP_ALLREDUCE_START, SYNC01, -1);
    }
    int W = 3 * h + (r < D - 1 - r ? r : D - 1 - r), U = 2 * D - W;
#define EF(i) (rc = rc ? rc : emit_entry(out, r, &Fl.e[(i)], err, errlen))
#define EB(i) (rc = rc ? rc : emit_entry(out, r, &Bl.e[(i)], err, errlen))
    for (int k = 0; k < W; k++) EF(k);
    if (steady) {
      for (int k = 0; W + k < Fl.n; k++) EF(W + k), EB(k);
      for (int k = Fl.n - W; k < Bl.n; k++) EB(k);
    } else {
      for (int g = 0; g < G - 1; g++) { /* the code's n_loop, phases #1-#4 */
        int o = 2 * D * g;
        for (int k = 0; k < U; k++) EF(o + W + k), EB(o + k);
        for (int k = 0; k < W - U + 1; k++) EB(o + U + k);
        for (int k = 0; k < U - 1; k++) EF(o + 2 * D + k), EB(o + W + 1 + k);
        for (int k = 0; k < W - U + 1; k++) EF(o + 2 * D + U - 1 + k);
      }
      int o = 2 * D * (G - 1);
      for (int k = 0; k < U; k++) EF(o + W + k), EB(o + k);
      for (int k = 0; k < 2 * D - U + 2; k++) EB(o + U + k);
    }
#undef EF
#undef EB
  }
  free(Fl.e);
  free(Bl.e);
  return rc;
}

int bp_gen_bitpipe(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  return generate(sp, 0, out, err, errlen);
}

int bp_gen_bitpipe_steady(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  return generate(sp, 1, out, err, errlen);
}
