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
 * "bitpipe-steady" runs all N micro-batches as one continuous stream: Megatron's interleaved
 * order carried over to the W-shaped pipeline that each mirrored pair of ranks forms (details
 * at bp_gen_bitpipe_steady). It removes the per-unit idle time: at D=8, N=32 (backward = 2 x
 * forward) its simulated bubble is 0.086, the authors' order 0.135, interleaved v=2 0.099.
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

/* bitpipe-steady. With the mirror symmetry of the placement (rank D-1-r runs for the UP pipe
 * exactly what rank r runs for the DOWN pipe, at the same times), the pair {q, D-1-q} (q < D/2)
 * behaves as one "super-rank" q that executes, one after the other, every op of stages
 *   q, D-1-q, D+q, 2D-1-q
 * of one pipe: a single W-shaped pipeline (out and back twice) over D/2 super-ranks with four
 * chunks each. Rank q runs the super-rank's list with stages q and 2D-1-q taken from DOWN and
 * the other two from UP; rank D-1-q runs the same list with the pipes swapped.
 *
 * The list is Megatron's interleaved order carried over to that W: the j-th micro-batch of a
 * pipe (group g = j / h, i = j % h, h = D/2) is forwarded at stage s at the "flow" time
 *   4h g + 2i + s,
 * under which every super-rank finds one forward ready per time unit and no two collide (the
 * stages of one super-rank differ by odd amounts or by 2h, the micro-batches of a group by even
 * amounts below 2h); its backwards follow the same flow at twice the duration,
 *   8h g + 4i + 2(2D-1-s).
 * Each super-rank sorts its forwards and its backwards by those times, runs 4h-1 forwards, then
 * one forward and one backward alternately, then the remaining backwards (1F1B). The stash of
 * every rank is then 4h = 2D chunk activations, the authors' peak (their middle ranks; their
 * edge ranks hold less). Groups follow each other without a flush, so no per-unit idle time
 * accumulates.
 *
 * The flow's warm-up is longer than the authors' (4h-1 forwards on every rank, against their
 * 3h + min(r, D-1-r)): with backward = 2 x forward it costs about D-2 chunk-forward units more,
 * which is what one unit boundary of the authors' order costs. So with N = D the flow is slower,
 * with N = 2D it ties (and needs more memory on the edge ranks), and from N = 3D on it is faster
 * by D-2 units per further boundary. For N <= 2D the authors' order is therefore used as it is,
 * sync points included; otherwise all-reduces start eagerly. Simulated at D=8, F=1, B=2 per
 * chunk: N=32 takes 210 units against the authors' 222 (bubble 0.086 against 0.135; interleaved
 * v=2: 0.099).
 *
 * Memory: every rank of the flow stashes at most 2D chunk activations, the authors' peak (their
 * middle ranks); their edge ranks stash only 3D/2 + 1, so the flow raises the edge ranks to the
 * level of the middle ones. Fewer warm-up forwards deadlock the 1F1B alternation (the backward
 * it reaches would wait on a forward queued behind it). */
typedef struct {
  int j, s;
  long key;
} flow_op;

static int flow_cmp(const void *a, const void *b) {
  long x = ((const flow_op *)a)->key, y = ((const flow_op *)b)->key;
  return (x > y) - (x < y);
}

/* The micro-batch id of the j-th micro-batch of pipe `pipe` (ids as in setup: m mod D < D/2
 * goes DOWN). */
static int pipe_mb(int D, int pipe, int j) { return (j / (D / 2)) * D + pipe * (D / 2) + j % (D / 2); }

/* Emits op (kind 0 forward, 1 backward) of the super-rank's stage s for its j-th micro-batch on
 * the two ranks of super-rank q. */
static int emit_pair(bp_program *out, int q, int kind, int j, int s, char *err, size_t errlen) {
  int D = out->D, own = (s == q || s == 2 * D - 1 - q) ? 0 : 1; /* rank q's pipe for stage s */
  bp_op op = kind ? BP_OP_BWD : BP_OP_FWD;
  return bp_program_emit_stage(out, q, op, s, pipe_mb(D, own, j), err, errlen) ||
         bp_program_emit_stage(out, D - 1 - q, op, s, pipe_mb(D, 1 - own, j), err, errlen);
}

int bp_gen_bitpipe_steady(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  if (setup(sp, "bitpipe-steady", out, err, errlen)) return -1;
  int D = sp->D, N = sp->N, h = D / 2, S = 2 * D, J = N / 2, n = 4 * J, rc = 0;
  if (N <= 2 * D) { /* at most one unit boundary: the authors' order (see above) */
    list Fl = {malloc(sizeof(entry) * 2 * N), 0}, Bl = {malloc(sizeof(entry) * (2 * N + 2)), 0};
    if (!Fl.e || !Bl.e) rc = bp_sched_errf(err, errlen, "bitpipe-steady: out of memory");
    for (int r = 0; r < D && rc == 0; r++) {
      unit_lists(&Fl, &Bl, D, N, r, 1);
      rc = authors_order(out, r, &Fl, &Bl, err, errlen);
    }
    free(Fl.e), free(Bl.e);
    return rc;
  }
  flow_op *F = malloc(sizeof *F * n), *B = malloc(sizeof *B * n);
  if (!F || !B) rc = bp_sched_errf(err, errlen, "bitpipe-steady: out of memory");
  for (int q = 0; q < h && rc == 0; q++) {
    int st[4] = {q, D - 1 - q, D + q, 2 * D - 1 - q}, k = 0;
    for (int j = 0; j < J; j++)
      for (int c = 0; c < 4; c++, k++) {
        long g = j / h, i = j % h, s = st[c];
        F[k] = (flow_op){j, st[c], 4 * h * g + 2 * i + s};
        B[k] = (flow_op){j, st[c], 8 * h * g + 4 * i + 2 * (S - 1 - s)};
      }
    qsort(F, n, sizeof *F, flow_cmp);
    qsort(B, n, sizeof *B, flow_cmp);
    int w = 4 * h - 1 < n ? 4 * h - 1 : n, f = 0, b = 0;
    while (rc == 0 && f < w) rc = emit_pair(out, q, 0, F[f].j, F[f].s, err, errlen), f++;
    while (rc == 0 && f < n) {
      rc = emit_pair(out, q, 0, F[f].j, F[f].s, err, errlen) ||
           emit_pair(out, q, 1, B[b].j, B[b].s, err, errlen);
      f++, b++;
    }
    while (rc == 0 && b < n) rc = emit_pair(out, q, 1, B[b].j, B[b].s, err, errlen), b++;
  }
  free(F), free(B);
  return rc;
}
