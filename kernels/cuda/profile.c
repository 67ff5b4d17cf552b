/* kernels/cuda/profile.c — per-node GPU timing of the executor (BP_CUDA_PROFILE=1): a CUDA event
 * is recorded on the stream before the first node and after every node, so the time between two
 * consecutive events is what the stream spent on that node (its kernels, cuBLASLt calls, copies,
 * and any idle time while the host was still preparing it). After each run (the executor
 * synchronises at its end) the times are added up per node; the first run is a warm-up and is not
 * counted (module loading, cuBLASLt's first heuristics, pool growth). Work outside the graph (the
 * trainer's gradient norm and optimizer) is added as named extras. The report, per run: time per
 * op type and the slowest nodes, on stderr when the executor is freed. */
#include "kernels/cuda/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EXTRA 8

struct bp_cuda_prof {
  const bp_graph *g;
  int nnodes;
  cudaEvent_t *ev;  /* nnodes + 1 */
  double *node_ms;  /* summed over counted runs */
  double *last_ms;  /* the last run's, warm-up included (kernels/cuda/layer_profile.c reads these) */
  int runs_seen, runs_counted;
  int nextra;
  const char *extra_name[MAX_EXTRA];
  double extra_ms[MAX_EXTRA];
};

int bp_cuda_prof_enabled(void) {
  const char *s = getenv("BP_CUDA_PROFILE");
  return s && *s && strcmp(s, "0") != 0;
}

bp_cuda_prof *bp_cuda_prof_new(const bp_graph *g, bp_err *e) {
  bp_cuda_prof *p = calloc(1, sizeof *p);
  if (!p) {
    bp_errf(e, "out of memory");
    return NULL;
  }
  p->g = g;
  p->nnodes = g->nnodes;
  p->ev = calloc((size_t)g->nnodes + 1, sizeof(cudaEvent_t));
  p->node_ms = calloc((size_t)g->nnodes + 1, sizeof(double));
  p->last_ms = calloc((size_t)g->nnodes + 1, sizeof(double));
  if (!p->ev || !p->node_ms || !p->last_ms) {
    bp_errf(e, "out of memory");
    bp_cuda_prof_free(p);
    return NULL;
  }
  for (int i = 0; i <= g->nnodes; i++) {
    cudaError_t rc = cudaEventCreate(&p->ev[i]);
    if (rc != cudaSuccess) {
      bp_cuda_fail(e, NULL, "profiling (BP_CUDA_PROFILE)", "cudaEventCreate(&ev)", cudaGetErrorString(rc), __FILE__,
                   __LINE__);
      bp_cuda_prof_free(p);
      return NULL;
    }
  }
  return p;
}

void bp_cuda_prof_free(bp_cuda_prof *p) {
  if (!p) return;
  for (int i = 0; p->ev && i <= p->nnodes; i++)
    if (p->ev[i]) cudaEventDestroy(p->ev[i]);
  free(p->ev);
  free(p->node_ms);
  free(p->last_ms);
  free(p);
}

int bp_cuda_prof_mark(bp_cuda_prof *p, bp_cuda *dc, int i, bp_err *e) {
  BP_CU_AT(cudaEventRecord(p->ev[i], dc->stream), "profiling (BP_CUDA_PROFILE)", e);
  return 0;
}

int bp_cuda_prof_collect(bp_cuda_prof *p, bp_err *e) {
  int counted = p->runs_seen++ > 0; /* the first run is a warm-up */
  BP_CU_AT(cudaEventSynchronize(p->ev[p->nnodes]), "profiling (BP_CUDA_PROFILE)", e);
  for (int i = 0; i < p->nnodes; i++) {
    float ms = 0;
    BP_CU_AT(cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]), "profiling (BP_CUDA_PROFILE)", e);
    p->last_ms[i] = ms;
    if (counted) p->node_ms[i] += ms;
  }
  p->runs_counted += counted;
  return 0;
}

int bp_cuda_prof_last(const bp_cuda_prof *p, double *node_s, bp_err *e) {
  if (!p || p->runs_seen == 0) return bp_errf(e, "internal: no timed run of the graph yet");
  for (int i = 0; i < p->nnodes; i++) node_s[i] = p->last_ms[i] * 1e-3;
  return 0;
}

void bp_cuda_prof_add(bp_cuda_prof *p, const char *name, double ms) {
  if (!p || p->runs_seen <= 1) return; /* the warm-up run's extras are not counted either */
  for (int k = 0; k < p->nextra; k++)
    if (!strcmp(p->extra_name[k], name)) {
      p->extra_ms[k] += ms;
      return;
    }
  if (p->nextra < MAX_EXTRA) {
    p->extra_name[p->nextra] = name;
    p->extra_ms[p->nextra++] = ms;
  }
}

typedef struct {
  const char *op;
  int nodes;
  double ms;
} op_row;

static int by_ms_desc(const void *a, const void *b) {
  double x = ((const op_row *)a)->ms, y = ((const op_row *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

void bp_cuda_prof_report(const bp_cuda_prof *p, FILE *f) {
  if (!p || p->runs_counted == 0) return;
  const bp_graph *g = p->g;
  double runs = p->runs_counted, graph = 0, extra = 0;
  op_row *rows = calloc((size_t)p->nnodes + 1, sizeof *rows);
  op_row *top = calloc((size_t)p->nnodes + 1, sizeof *top);
  if (!rows || !top) {
    free(rows), free(top);
    return;
  }
  int nrows = 0;
  for (int i = 0; i < p->nnodes; i++) {
    const char *op = g->nodes[i]->op_type;
    graph += p->node_ms[i] / runs;
    int k = 0;
    while (k < nrows && strcmp(rows[k].op, op)) k++;
    if (k == nrows) rows[nrows++].op = op;
    rows[k].nodes++;
    rows[k].ms += p->node_ms[i] / runs;
  }
  for (int k = 0; k < p->nextra; k++) extra += p->extra_ms[k] / runs;
  double total = graph + extra;
  qsort(rows, (size_t)nrows, sizeof *rows, by_ms_desc);
  { /* the stream-ordered pool's high-water mark: what the run needed on the device */
    int dev = 0;
    cudaMemPool_t pool;
    uint64_t used = 0, reserved = 0;
    if (cudaGetDevice(&dev) == cudaSuccess && cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess &&
        cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &used) == cudaSuccess &&
        cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &reserved) == cudaSuccess)
      fprintf(f, "profile: device memory pool high-water mark: %.2f GiB used, %.2f GiB reserved\n",
              (double)used / (1 << 30), (double)reserved / (1 << 30));
    else
      (void)cudaGetLastError();
  }
  fprintf(f, "profile (BP_CUDA_PROFILE): %d run(s) after the warm-up; per run: graph %.2f ms (%d nodes), outside the "
             "graph %.2f ms, total %.2f ms\n", p->runs_counted, graph, p->nnodes, extra, total);
  fprintf(f, "profile: %-28s %6s %10s %6s\n", "op", "nodes", "ms/run", "%");
  for (int k = 0; k < nrows; k++)
    fprintf(f, "profile: %-28s %6d %10.3f %6.1f\n", rows[k].op, rows[k].nodes, rows[k].ms,
            total > 0 ? 100 * rows[k].ms / total : 0);
  for (int k = 0; k < p->nextra; k++)
    fprintf(f, "profile: %-28s %6s %10.3f %6.1f\n", p->extra_name[k], "-", p->extra_ms[k] / runs,
            total > 0 ? 100 * p->extra_ms[k] / runs / total : 0);
  /* by op and first output's shape (which kernels of an op cost the time) */
  {
    char(*keys)[96] = calloc((size_t)p->nnodes + 1, sizeof *keys);
    op_row *sh = calloc((size_t)p->nnodes + 1, sizeof *sh);
    if (keys && sh) {
      int nk = 0;
      for (int i = 0; i < p->nnodes; i++) {
        const bp_node *n = g->nodes[i];
        char s[80] = "";
        if (n->nout > 0 && n->out[0] >= 0) bp_shape_str(&g->tensors[n->out[0]]->v, s, sizeof s);
        char key[96];
        snprintf(key, sizeof key, "%.22s %s", n->op_type, s);
        int k = 0;
        while (k < nk && strcmp(keys[k], key)) k++;
        if (k == nk) {
          memcpy(keys[nk], key, sizeof key);
          sh[nk].op = keys[nk];
          nk++;
        }
        sh[k].nodes++;
        sh[k].ms += p->node_ms[i] / runs;
      }
      qsort(sh, (size_t)nk, sizeof *sh, by_ms_desc);
      fprintf(f, "profile: by op and output shape (top 30): %-40s %6s %10s %6s\n", "", "nodes", "ms/run", "%");
      for (int k = 0; k < nk && k < 30; k++)
        fprintf(f, "profile:   %-60s %6d %10.3f %6.1f\n", sh[k].op, sh[k].nodes, sh[k].ms,
                total > 0 ? 100 * sh[k].ms / total : 0);
    }
    free(keys);
    free(sh);
  }
  /* the slowest nodes */
  for (int i = 0; i < p->nnodes; i++) {
    top[i].ms = p->node_ms[i] / runs;
    top[i].nodes = i;
  }
  qsort(top, (size_t)p->nnodes, sizeof *top, by_ms_desc);
  int show = p->nnodes < 15 ? p->nnodes : 15;
  fprintf(f, "profile: slowest nodes (ms/run, op, name, first output's shape)\n");
  for (int j = 0; j < show; j++) {
    const bp_node *n = g->nodes[top[j].nodes];
    char s[200] = "";
    if (n->nout > 0 && n->out[0] >= 0) bp_shape_str(&g->tensors[n->out[0]]->v, s, sizeof s);
    fprintf(f, "profile: %10.3f  %-22s %s %s\n", top[j].ms, n->op_type, n->name ? n->name : "", s);
  }
  free(rows);
  free(top);
}
