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
 * "bitpipe-steady" schedules all N micro-batches as one continuous stream by list scheduling
 * (list_sched.c, backward = 2 x forward): Fl and Bl are the preference orders, backwards run in
 * Bl order, each rank's stash is capped at the authors' peak W+1, and at most D/2 micro-batches
 * per direction are in flight. Its all-reduces start eagerly. STATUS: at D=8, N=32 it only ties
 * the authors' order (bubble 0.135); it does not yet remove the per-unit idle time (see
 * docs/schedules.md and tests/schedule/test_steady.c).
 *
 * Requires D even (>= 2) and N % D == 0. */
#include "partitioner/list_sched.h"
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

/* Fl and Bl of rank r over all N/D units; the authors' sync markers in Bl when `markers`. */
static void unit_lists(list *Fl, list *Bl, int D, int N, int r, int markers) {
  int h = D / 2;
  Fl->n = Bl->n = 0;
  for (int g = 0; g < N / D; g++) group_order(Fl, D, r, g, 1), group_order(Bl, D, r, g, 0);
  if (!markers) return;
  if (r == h || r == h - 1) { /* the code's sync markers (l.238-243) */
    put(Bl, BP_OP_ALLREDUCE_START, SYNC23, -1);
  } else {
    Bl->e[Bl->n] = Bl->e[Bl->n - 1];
    Bl->e[Bl->n - 1] = (entry){BP_OP_ALLREDUCE_START, SYNC23, -1};
    Bl->n++;
  }
  put(Bl, BP_OP_ALLREDUCE_START, SYNC01, -1);
}

static int warmup(int D, int r) { return 3 * (D / 2) + (r < D - 1 - r ? r : D - 1 - r); }

/* The authors' interleaving of Fl and Bl (bitpipe_schedule.py l.133-149, l.385-800). */
static int authors_order(bp_program *out, int r, const list *Fl, const list *Bl, char *err,
                         size_t errlen) {
  int D = out->D, G = out->N / D, W = warmup(D, r), U = 2 * D - W, rc = 0;
#define EF(i) (rc = rc ? rc : emit_entry(out, r, &Fl->e[(i)], err, errlen))
#define EB(i) (rc = rc ? rc : emit_entry(out, r, &Bl->e[(i)], err, errlen))
  for (int k = 0; k < W; k++) EF(k);
  for (int g = 0; g < G - 1; g++) { /* the n_loop, phases #1-#4 */
    int o = 2 * D * g;
    for (int k = 0; k < U; k++) EF(o + W + k), EB(o + k);         /* 1F1B */
    for (int k = 0; k < W - U + 1; k++) EB(o + U + k);             /* partial cooldown */
    for (int k = 0; k < U - 1; k++) EF(o + 2 * D + k), EB(o + W + 1 + k); /* 1F1B across units */
    for (int k = 0; k < W - U + 1; k++) EF(o + 2 * D + U - 1 + k); /* next unit's warm-up */
  }
  int o = 2 * D * (G - 1);
  for (int k = 0; k < U; k++) EF(o + W + k), EB(o + k);
  for (int k = 0; k < 2 * D - U + 2; k++) EB(o + U + k); /* cooldown incl. both syncs */
#undef EF
#undef EB
  return rc;
}

int bp_gen_bitpipe(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  if (setup(sp, "bitpipe", out, err, errlen)) return -1;
  int D = sp->D, N = sp->N, rc = 0;
  list Fl = {malloc(sizeof(entry) * 2 * N), 0}, Bl = {malloc(sizeof(entry) * (2 * N + 2)), 0};
  if (!Fl.e || !Bl.e) rc = bp_sched_errf(err, errlen, "bitpipe: out of memory");
  for (int r = 0; r < D && rc == 0; r++) {
    unit_lists(&Fl, &Bl, D, N, r, 1);
    rc = authors_order(out, r, &Fl, &Bl, err, errlen);
  }
  free(Fl.e);
  free(Bl.e);
  return rc;
}

/* bitpipe-steady: list scheduling (list_sched.c) with backward = 2 x forward, Fl and Bl as the
 * preference orders, and each rank's stash capped at the authors' peak W+1. */
int bp_gen_bitpipe_steady(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  if (setup(sp, "bitpipe-steady", out, err, errlen)) return -1;
  int D = sp->D, N = sp->N, rc = 0;
  list Fl = {malloc(sizeof(entry) * 2 * N), 0}, Bl = {malloc(sizeof(entry) * (2 * N + 2)), 0};
  bp_ls_list *fl = calloc(D, sizeof *fl), *bl = calloc(D, sizeof *bl);
  int *cap = malloc(sizeof(int) * D);
  if (!Fl.e || !Bl.e || !fl || !bl || !cap || bp_ls_lists_alloc(fl, D, 2 * N)) {
    rc = bp_sched_errf(err, errlen, "bitpipe-steady: out of memory");
  } else if (bp_ls_lists_alloc(bl, D, 2 * N)) {
    bp_ls_lists_free(fl, D);
    rc = bp_sched_errf(err, errlen, "bitpipe-steady: out of memory");
  }
  if (rc == 0) {
    for (int r = 0; r < D; r++) {
      unit_lists(&Fl, &Bl, D, N, r, 0);
      for (int i = 0; i < Fl.n; i++) bp_ls_put(&fl[r], Fl.e[i].mb, bp_program_chunk(out, r, Fl.e[i].chunk)->stage);
      for (int i = 0; i < Bl.n; i++) bp_ls_put(&bl[r], Bl.e[i].mb, bp_program_chunk(out, r, Bl.e[i].chunk)->stage);
      cap[r] = warmup(D, r) + 1;
    }
    const char *e;
    int U_ = (e = getenv("XU")) ? atoi(e) : D, I_ = (e = getenv("XI")) ? atoi(e) : D / 2, S_ = (e = getenv("XS")) ? atoi(e) : 1, C_ = (e = getenv("XC")) ? atoi(e) : 0;
    for (int r = 0; r < D; r++) cap[r] += C_;
    bp_ls_spec spec = {1, 2, 0, cap, U_, I_, S_, fl, bl};
    rc = bp_list_schedule(out, &spec, err, errlen);
    bp_ls_lists_free(fl, D);
    bp_ls_lists_free(bl, D);
  }
  free(Fl.e), free(Bl.e), free(fl), free(bl), free(cap);
  return rc;
}
