/* runtime/memplan.c — memory accounting shared by the compiler and the runtime (runtime/plan.h):
 * how many slot arenas each chunk needs (a scan of the rank's program) and how many bytes a rank
 * allocates. The compiler prints the same figure as planned_rank_bytes that the runtime reports as
 * allocated, because both call these functions. No MPI here (library bitpipe_rtplan). */
#include "runtime/plan.h"

#include <stdlib.h>
#include <string.h>

/* The local chunk that receives a LOCAL_ACT (dir +1) or LOCAL_GRAD (dir -1) hand-over from chunk c
 * of rank r, or -1 when the neighbour stage is not on r. */
int bp_rt_local_peer_chunk(const bp_program *p, int r, int c, int dir) {
  const bp_chunk *ch = bp_program_chunk(p, r, c);
  int s = ch->stage + dir;
  if (s < 0 || s >= p->n_stages) return -1;
  int k = ch->pipe * p->n_stages + s;
  if (p->stage_rank[k] != r) return -1;
  return p->stage_chunk[k];
}

int bp_rt_chunk_slots(const bp_program *p, int r, int *slots, char *err, size_t errlen) {
  int C = p->chunks_per_rank, N = p->N;
  if (r < 0 || r >= p->D) return bp_sched_errf(err, errlen, "rank %d outside the program's %d ranks", r, p->D);
  const bp_rank_program *rp = &p->rank[r];
  /* first[c*N+m], last[c*N+m]: instruction indexes where (c, m) is first and last named */
  int *first = malloc(sizeof(int) * (size_t)C * (size_t)N * 2);
  if (!first) return bp_sched_errf(err, errlen, "out of memory");
  int *last = first + (size_t)C * N;
  for (int i = 0; i < C * N; i++) first[i] = last[i] = -1;
  for (int i = 0; i < rp->n; i++) {
    const bp_instr *x = &rp->code[i];
    if (x->mb < 0 || x->chunk < 0) continue;
    if (x->mb >= N || x->chunk >= C) {
      free(first);
      return bp_sched_errf(err, errlen, "rank %d instruction %d: chunk %d / micro-batch %d out of range", r, i,
                           x->chunk, x->mb);
    }
    int cs[2] = {x->chunk, -1};
    if (x->op == BP_OP_LOCAL_ACT || x->op == BP_OP_LOCAL_GRAD) {
      cs[1] = bp_rt_local_peer_chunk(p, r, x->chunk, x->op == BP_OP_LOCAL_ACT ? 1 : -1);
      if (cs[1] < 0) {
        free(first);
        return bp_sched_errf(err, errlen, "rank %d instruction %d: %s of chunk %d has no neighbour chunk on the rank",
                             r, i, bp_op_name((bp_op)x->op), x->chunk);
      }
    }
    for (int k = 0; k < 2 && cs[k] >= 0; k++) {
      int id = cs[k] * N + x->mb;
      if (first[id] < 0) first[id] = i;
      last[id] = i;
    }
  }
  /* sweep: +1 at first, -1 after last, per chunk */
  for (int c = 0; c < C; c++) {
    int live = 0, peak = 0;
    for (int i = 0; i < rp->n; i++) {
      for (int m = 0; m < N; m++)
        if (first[c * N + m] == i) live++;
      if (live > peak) peak = live;
      for (int m = 0; m < N; m++)
        if (last[c * N + m] == i) live--;
    }
    slots[c] = peak;
  }
  free(first);
  return 0;
}

int64_t bp_rt_rank_bytes(const bp_rt_model *m, const bp_program *p, int r, int optimizer, char *err,
                         size_t errlen) {
  int C = p->chunks_per_rank;
  int *slots = malloc(sizeof(int) * (size_t)(C ? C : 1));
  if (!slots) return bp_sched_errf(err, errlen, "out of memory");
  if (bp_rt_chunk_slots(p, r, slots, err, errlen) < 0) {
    free(slots);
    return -1;
  }
  int64_t total = 0, work = 0;
  int states = optimizer == 1 ? 2 : 1;
  for (int c = 0; c < C; c++) {
    int s = bp_program_chunk(p, r, c)->stage;
    if (s < 0 || s >= m->n_stages) {
      free(slots);
      return bp_sched_errf(err, errlen, "rank %d chunk %d: stage %d, but the model has %d stages", r, c, s,
                           m->n_stages);
    }
    const bp_rt_stage *st = &m->stages[s];
    total += st->param_bytes * (2 + states) + st->const_bytes + (int64_t)slots[c] * st->slot_bytes;
    if (st->work_bytes > work) work = st->work_bytes;
  }
  free(slots);
  return total + work;
}
