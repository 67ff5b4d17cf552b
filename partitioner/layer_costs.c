/* partitioner/layer_costs.c — layer costs: the device-model table, the analytic roofline model,
 * profiling (on the CPU backend, or on a device through its node timer) with its cache, and
 * closed-form GPT-2 layers (see layer_costs.h). */
#include "partitioner/layer_costs.h"
#include "frontend/autodiff.h"
#include "frontend/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Peak dense rates from the vendors' datasheets (no sparsity):
 *   H100 SXM5 80GB: NVIDIA H100 Tensor Core GPU datasheet (2023): FP32 67 TFLOP/s, BF16 989 TFLOP/s,
 *                   HBM3 3.35 TB/s; NVLink 4 900 GB/s total = 450 GB/s per direction.
 *   H200 SXM 141GB: NVIDIA H200 datasheet (2024): same compute as H100 SXM, HBM3e 4.8 TB/s.
 *   A100 SXM4 80GB: NVIDIA A100 datasheet (2021): FP32 19.5 TFLOP/s, BF16 312 TFLOP/s,
 *                   HBM2e 2.039 TB/s; NVLink 3 600 GB/s total = 300 GB/s per direction.
 * Link latency: a few microseconds per NCCL p2p message within a node (assumed 5 us). */
static const bp_device_model devices[] = {
    {"h100", 67e12, 989e12, 3.35e12, 80e9, 450e9, 5e-6, "NVIDIA H100 SXM5 datasheet"},
    {"h200", 67e12, 989e12, 4.8e12, 141e9, 450e9, 5e-6, "NVIDIA H200 SXM datasheet"},
    {"a100", 19.5e12, 312e12, 2.039e12, 80e9, 300e9, 5e-6, "NVIDIA A100 SXM4 80GB datasheet"},
};

const bp_device_model *bp_device_models(int *count) {
  *count = (int)(sizeof devices / sizeof devices[0]);
  return devices;
}

const bp_device_model *bp_device_model_find(const char *name) {
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
    if (!strcmp(devices[i].name, name)) return &devices[i];
  return NULL;
}

void bp_lcosts_free(bp_lcosts *c) {
  free(c->l), free(c->tied);
  memset(c, 0, sizeof *c);
}

int bp_lcosts_add_tied(bp_lcosts *c, int a, int b, double bytes, const char *name, bp_err *e) {
  if (a < 0 || b <= a || b >= c->n) return bp_errf(e, "tied parameter '%s': layers %d and %d (of %d)", name, a, b, c->n);
  bp_ltied *t = realloc(c->tied, sizeof *t * (size_t)(c->n_tied + 1));
  if (!t) return bp_errf(e, "out of memory");
  c->tied = t;
  t += c->n_tied++;
  t->a = a, t->b = b, t->bytes = bytes;
  snprintf(t->name, sizeof t->name, "%s", name);
  return 0;
}

/* The loss is the first output of the last forward node (bp_loss_append puts it there). A float
 * initializer is a parameter when the loss depends on it (the rule bp_model_layers_build uses) and
 * it is neither a buffer nor a scalar literal (the rule `bitpipec train` freezes by). One pass over
 * the forward nodes: a parameter's first reading layer pairs with every other. */
int bp_lcosts_find_tied(const bp_model_layers *m, bp_lcosts *c, bp_err *e) {
  const bp_graph *g = m->g;
  if (!g || m->n_fwd <= 0) return 0;
  int nt = g->ntensors, rc = -1;
  int *lo = malloc(sizeof(int) * (size_t)nt);
  unsigned char *reach = calloc((size_t)nt, 1), *frozen = calloc((size_t)nt, 1);
  if (!lo || !reach || !frozen) {
    bp_errf(e, "out of memory");
    goto done;
  }
  if (bp_params_find_buffers(g, frozen, e)) goto done;
  const bp_node *last = g->nodes[m->n_fwd - 1];
  if (last->nout > 0 && last->out[0] >= 0) bp_ad_reachable(g, last->out[0], reach);
  else memset(reach, 1, (size_t)nt);
  for (int t = 0; t < nt; t++) lo[t] = -1;
  for (int i = 0; i < m->n_fwd; i++) {
    const bp_node *nd = g->nodes[i];
    int l = m->node_layer[i];
    if (l < 0) continue;
    for (int k = 0; k < nd->nin; k++) {
      int t = nd->in[k];
      if (t < 0) continue;
      const bp_tensor *tt = g->tensors[t];
      if (tt->kind != BP_T_INITIALIZER || tt->v.dtype != BP_F32 || !reach[t] || frozen[t]) continue;
      if (lo[t] < 0) {
        lo[t] = l;
        continue;
      }
      if (l == lo[t]) continue;
      int a = l < lo[t] ? l : lo[t], b = l < lo[t] ? lo[t] : l, dup = 0;
      for (int j = 0; j < c->n_tied && !dup; j++)
        dup = c->tied[j].a == a && c->tied[j].b == b && !strncmp(c->tied[j].name, tt->name, sizeof c->tied[j].name - 1);
      if (!dup && bp_lcosts_add_tied(c, a, b, (double)bp_value_bytes(&tt->v), tt->name, e)) goto done;
    }
  }
  rc = 0;
done:
  free(lo), free(reach), free(frozen);
  return rc;
}

int bp_lcosts_alloc(bp_lcosts *c, int n, bp_err *e) {
  memset(c, 0, sizeof *c);
  c->l = calloc((size_t)(n > 0 ? n : 1), sizeof(bp_lcost));
  if (!c->l) return bp_errf(e, "out of memory");
  c->n = n;
  return 0;
}

/* One roofline per part: matmuls on tensor cores, the rest on the fp32 units; bytes in bf16. */
static double roofline(const bp_device_model *d, double mm_flops, double mm_bytes, double other_flops,
                       double other_bytes) {
  double a = fmax(mm_flops / d->bf16_flops, mm_bytes / d->hbm_bw);
  double b = fmax(other_flops / d->fp32_flops, other_bytes / d->hbm_bw);
  return a + b;
}

int bp_lcosts_analytic(const bp_model_layers *m, const bp_device_model *dev, bp_lcosts *out, bp_err *e) {
  if (bp_lcosts_alloc(out, m->n, e)) return -1;
  const double half = 0.5; /* the graph is fp32; the device trains in bf16 */
  for (int i = 0; i < m->n; i++) {
    const bp_layer_info *L = &m->layer[i];
    bp_lcost *c = &out->l[i];
    snprintf(c->name, sizeof c->name, "%s", L->name);
    c->fwd = roofline(dev, L->matmul_flops, L->matmul_bytes * half, L->flops_fwd - L->matmul_flops,
                      (L->bytes_fwd - L->matmul_bytes) * half);
    c->bwd = 2 * c->fwd;
    c->flops = L->flops_fwd;
    c->param_bytes = L->param_bytes;
    c->state_bytes = 4 * L->param_bytes;
    c->act_bytes = L->act_bytes * half;
    c->out_bytes = L->out_bytes * half;
  }
  snprintf(out->source, sizeof out->source, "analytic: %s peak rates (%s), bf16, backward = 2 x forward",
           dev->name, dev->source);
  out->link_bw = dev->link_bw, out->link_lat = dev->link_lat, out->mem_bytes = dev->mem_bytes;
  if (bp_lcosts_find_tied(m, out, e)) {
    bp_lcosts_free(out);
    return -1;
  }
  return 0;
}

/* ---- profiling ------------------------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void cpu_name(char *buf, size_t n) {
  snprintf(buf, n, "unknown-cpu");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[512];
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10)) {
      char *c = strchr(line, ':');
      if (c) {
        c++;
        while (*c == ' ') c++;
        c[strcspn(c, "\n")] = 0;
        for (char *q = c; *q; q++)
          if (*q == ' ') *q = '_';
        snprintf(buf, n, "%s", c);
      }
      break;
    }
  fclose(f);
}

static int file_key(const char *path, char *buf, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  uint64_t h = 1469598103934665603ull;
  long size = 0;
  unsigned char b[65536];
  size_t k;
  while ((k = fread(b, 1, sizeof b, f)) > 0) {
    for (size_t i = 0; i < k; i++) h = (h ^ b[i]) * 1099511628211ull;
    size += (long)k;
  }
  fclose(f);
  const char *base = strrchr(path, '/');
  snprintf(buf, n, "%s:%ld:%016llx", base ? base + 1 : path, size, (unsigned long long)h);
  return 0;
}

static void default_cache(char *buf, size_t n) {
  const char *env = getenv("BITPIPE_PROFILE_CACHE");
  if (env && *env) {
    snprintf(buf, n, "%s", env);
    return;
  }
  const char *home = getenv("HOME");
  snprintf(buf, n, "%s/.cache/bitpipe/profiles.txt", home && *home ? home : ".");
}

static void mkdir_parents(const char *path) {
  char tmp[1024];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++)
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, 0755);
      *p = '/';
    }
}

/* Cache lines: "profile KEY n" then n lines "fwd bwd". */
static int cache_lookup(const char *path, const char *key, int n, double *fwd, double *bwd) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[2048];
  int hit = 0;
  while (!hit && fgets(line, sizeof line, f)) {
    if (strncmp(line, "profile ", 8)) continue;
    char *sp = strrchr(line, ' ');
    if (!sp) continue;
    int cnt = atoi(sp + 1);
    *sp = 0;
    if (strcmp(line + 8, key) || cnt != n) continue;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) /* a damaged entry is a miss */
      ok = fgets(line, sizeof line, f) && sscanf(line, "%lf %lf", &fwd[i], &bwd[i]) == 2 && isfinite(fwd[i]) &&
           isfinite(bwd[i]) && fwd[i] >= 0 && bwd[i] >= 0;
    hit = ok;
  }
  fclose(f);
  return hit;
}

static void cache_store(const char *path, const char *key, int n, const double *fwd, const double *bwd) {
  mkdir_parents(path);
  FILE *f = fopen(path, "a");
  if (!f) return; /* a cache that cannot be written is no error */
  fprintf(f, "profile %s %d\n", key, n);
  for (int i = 0; i < n; i++) fprintf(f, "%.17g %.17g\n", fwd[i], bwd[i]); /* round-trips exactly */
  fclose(f);
}

/* Every node of the training graph on the CPU backend, one warm-up run then R timed runs:
 * node_s[r * nnodes + i] (the bp_node_timer_fn contract, for the CPU). */
static int cpu_time_nodes(const bp_graph *g, int R, double *node_s, bp_err *e) {
  int nt = g->ntensors, rc = -1;
  bp_value *vals = calloc((size_t)nt + 1, sizeof(bp_value));
  unsigned char *owned = calloc((size_t)nt + 1, 1);
  if (!vals || !owned) {
    bp_errf(e, "out of memory");
    goto done;
  }
  for (int t = 0; t < nt; t++) {
    const bp_tensor *tt = g->tensors[t];
    vals[t] = tt->v;
    if (tt->kind == BP_T_CONSTANT || tt->kind == BP_T_INITIALIZER) continue;
    size_t b = bp_value_bytes(&tt->v);
    vals[t].data = calloc(b ? b : 1, 1); /* inputs: zeros (valid token ids and targets) */
    if (!vals[t].data) {
      bp_errf(e, "profile: out of memory for '%s' (%zu bytes)", tt->name, b);
      goto done;
    }
    owned[t] = 1;
  }
  bp_ctx ctx = {.training = 1, .seed = 0, .counter = 0};
  for (int rep = 0; rep < R + 1; rep++) { /* the first run warms up and is not counted */
    for (int i = 0; i < g->nnodes; i++) {
      const bp_node *nd = g->nodes[i];
      bp_value *in[64] = {0}, *ou[64] = {0};
      for (int k = 0; k < nd->nin && k < 64; k++) in[k] = nd->in[k] >= 0 ? &vals[nd->in[k]] : NULL;
      for (int k = 0; k < nd->nout && k < 64; k++) {
        ou[k] = nd->out[k] >= 0 ? &vals[nd->out[k]] : NULL;
        if (ou[k] && owned[nd->out[k]]) memset(ou[k]->data, 0, bp_value_bytes(ou[k]));
      }
      if (!nd->op || !nd->op->eval) {
        bp_errf(e, "profile: node '%s' (%s) has no CPU evaluation", nd->name, nd->op_type);
        goto done;
      }
      double t0 = now_s();
      if (nd->op->eval(&ctx, nd, in, nd->nin, ou, nd->nout, e) < 0) {
        bp_err_prefix_node(e, nd);
        goto done;
      }
      double dt = now_s() - t0;
      if (rep > 0) node_s[(size_t)(rep - 1) * g->nnodes + i] = dt;
    }
  }
  rc = 0;
done:
  for (int t = 0; t < nt && vals; t++)
    if (owned && owned[t]) free(vals[t].data);
  free(vals), free(owned);
  return rc;
}

const bp_device_model *bp_device_model_match(const char *gpu_name) {
  static const char *const tag[] = {"H100", "H200", "A100"};
  char up[512];
  size_t k = 0;
  for (; gpu_name && gpu_name[k] && k + 1 < sizeof up; k++)
    up[k] = (char)(gpu_name[k] >= 'a' && gpu_name[k] <= 'z' ? gpu_name[k] - 32 : gpu_name[k]);
  up[k] = 0;
  if (strstr(up, "PCIE")) return NULL; /* PCIe cards: no SXM NVLink */
  for (size_t i = 0; i < sizeof tag / sizeof tag[0]; i++)
    if (strstr(up, tag[i])) return &devices[i];
  return NULL;
}

int bp_lcosts_profile(const bp_model_layers *m, const bp_profile_opts *o, bp_lcosts *out, bp_err *e) {
  const bp_graph *g = m->g;
  const bp_profile_device *dev = o ? o->device : NULL;
  int R = o && o->repeats > 0 ? o->repeats : 5, n = m->n, nn = g->nnodes, rc = -1;
  if (dev && (!dev->time_nodes || !dev->key || !*dev->key))
    return bp_errf(e, "internal: a profile device needs a node timer and a key");
  if (bp_lcosts_alloc(out, n, e)) return -1;
  for (int i = 0; i < n; i++) {
    const bp_layer_info *L = &m->layer[i];
    bp_lcost *c = &out->l[i];
    snprintf(c->name, sizeof c->name, "%s", L->name);
    /* fp32 stash on either backend: the CUDA executor keeps activations in fp32 at every GEMM
     * precision (bf16 rounds GEMM inputs only) */
    c->flops = L->flops_fwd, c->param_bytes = L->param_bytes, c->state_bytes = 4 * L->param_bytes;
    c->act_bytes = L->act_bytes, c->out_bytes = L->out_bytes;
  }
  char key[2048], fk[512], devkey[300], cache[1024];
  if (dev) snprintf(devkey, sizeof devkey, "%s", dev->key);
  else {
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    snprintf(devkey, sizeof devkey, "cpu:%s", cpu);
  }
  if (file_key(m->model, fk, sizeof fk)) snprintf(fk, sizeof fk, "%s", m->model);
  /* the bound input shapes are part of the key whatever the caller adds: a changed shape misses */
  char ins[768];
  size_t k = 0;
  ins[0] = 0;
  for (int i = 0; i < g->ninputs && k < sizeof ins; i++) {
    const bp_tensor *tt = g->tensors[g->inputs[i]];
    k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s[", i ? ";" : "", tt->name);
    for (int d = 0; d < tt->v.rank && k < sizeof ins; d++)
      k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%lld", d ? "x" : "", (long long)tt->v.dims[d]);
    if (k < sizeof ins) k += (size_t)snprintf(ins + k, sizeof ins - k, "]");
  }
  /* the training graph's node count too: a graph pass that changes what runs (the GELU fusion,
   * BP_FUSE=0) must miss the cache even though the file and shapes are the same */
  snprintf(key, sizeof key, "model=%s inputs=%s shapes=%s layers=%d nodes=%d repeats=%d device=%s", fk, ins,
           o && o->key_extra ? o->key_extra : "", n, g->nnodes, R, devkey);
  for (char *q = key; *q; q++)
    if (*q == '\n') *q = ' ';
  if (o && o->cache_path) snprintf(cache, sizeof cache, "%s", o->cache_path);
  else default_cache(cache, sizeof cache);
  double *fwd = calloc((size_t)n, sizeof(double)), *bwd = calloc((size_t)n, sizeof(double));
  double *tf = calloc((size_t)n * R, sizeof(double)), *tb = calloc((size_t)n * R, sizeof(double));
  double *tmp = malloc(sizeof(double) * (size_t)R);
  double *node_s = NULL;
  int hit = 0;
  if (!fwd || !bwd || !tf || !tb || !tmp) {
    bp_errf(e, "out of memory");
    goto done;
  }
  if (cache[0] && cache_lookup(cache, key, n, fwd, bwd)) hit = 1;
  else {
    node_s = calloc((size_t)nn * R + 1, sizeof(double));
    if (!node_s) {
      bp_errf(e, "out of memory");
      goto done;
    }
    if (dev ? dev->time_nodes(dev->self, g, R, node_s, e) : cpu_time_nodes(g, R, node_s, e)) goto done;
    /* per layer and run: the sum of its nodes (forward nodes to fwd, backward nodes to bwd) */
    for (int r = 0; r < R; r++)
      for (int i = 0; i < nn; i++) {
        int l = m->node_layer[i];
        double dt = node_s[(size_t)r * nn + i];
        if (!isfinite(dt) || dt < 0) {
          bp_errf(e, "profile: node '%s' (%s) was timed at %g s in run %d", g->nodes[i]->name, g->nodes[i]->op_type, dt,
                  r + 1);
          goto done;
        }
        if (l < 0) continue;
        if (i < m->n_fwd) tf[(size_t)l * R + r] += dt;
        else tb[(size_t)l * R + r] += dt;
      }
    for (int l = 0; l < n; l++) {
      memcpy(tmp, tf + (size_t)l * R, sizeof(double) * R);
      qsort(tmp, (size_t)R, sizeof(double), cmp_d);
      fwd[l] = tmp[R / 2];
      memcpy(tmp, tb + (size_t)l * R, sizeof(double) * R);
      qsort(tmp, (size_t)R, sizeof(double), cmp_d);
      bwd[l] = tmp[R / 2];
    }
    if (cache[0]) cache_store(cache, key, n, fwd, bwd);
  }
  if (o && o->cache_hit) *o->cache_hit = hit;
  for (int l = 0; l < n; l++) out->l[l].fwd = fwd[l], out->l[l].bwd = bwd[l];
  if (bp_lcosts_find_tied(m, out, e)) goto done;
  if (!dev) {
    snprintf(out->source, sizeof out->source, "profiled on the CPU backend (%.80s), fp32, median of %d%s",
             devkey + 4, R, hit ? ", from the profile cache" : "");
  } else {
    const bp_device_model *dm = bp_device_model_match(dev->gpu_name);
    out->mem_bytes = dev->mem_bytes;
    out->link_bw = dm ? dm->link_bw : BP_DEFAULT_LINK_BW;
    out->link_lat = dm ? dm->link_lat : BP_DEFAULT_LINK_LAT;
    char links[200];
    if (dm)
      snprintf(links, sizeof links, "the %s model's (%.0f GB/s, %.0f us; the GPU's name matches)", dm->name,
               dm->link_bw / 1e9, dm->link_lat * 1e6);
    else
      snprintf(links, sizeof links, "assumed PCIe 4.0 x16 (%.0f GB/s, %.0f us; no analytic model matches the GPU's name)",
               BP_DEFAULT_LINK_BW / 1e9, BP_DEFAULT_LINK_LAT * 1e6);
    snprintf(out->source, sizeof out->source,
             "profiled on the GPU (%.200s), median of %d%s; memory: the GPU's %.1f GiB; links: %s",
             dev->what ? dev->what : dev->key, R, hit ? ", from the profile cache" : "", dev->mem_bytes / 1073741824.0,
             links);
  }
  rc = 0;
done:
  free(fwd), free(bwd), free(tf), free(tb), free(tmp), free(node_s);
  if (rc) bp_lcosts_free(out);
  return rc;
}

/* ---- closed-form GPT-2 --------------------------------------------------------------------- */

int bp_gpt2_shape_parse(const char *spec, bp_gpt2_shape *s, bp_err *e) {
  *s = (bp_gpt2_shape){.n_layer = 12, .n_embd = 768, .n_head = 12, .vocab = 50304, .seq = 1024, .n_ctx = 1024,
                       .micro_batch = 1, .fine = 0};
  if (strncmp(spec, "gpt2", 4)) return bp_errf(e, "synthetic model '%s': only gpt2[:k=v,...] is known", spec);
  const char *p = spec + 4;
  if (*p == ':') p++;
  else if (*p) return bp_errf(e, "synthetic model '%s': expected gpt2:key=value,...", spec);
  while (*p) {
    char k[32];
    long v;
    int used = 0;
    if (sscanf(p, "%31[a-z_]=%ld%n", k, &v, &used) != 2 || v <= 0 || v > (1L << 30))
      return bp_errf(e, "synthetic model '%s': cannot read '%s' (want key=positive integer)", spec, p);
    if (!strcmp(k, "n_layer")) s->n_layer = (int)v;
    else if (!strcmp(k, "n_embd")) s->n_embd = (int)v;
    else if (!strcmp(k, "n_head")) s->n_head = (int)v;
    else if (!strcmp(k, "vocab")) s->vocab = (int)v;
    else if (!strcmp(k, "seq")) s->seq = (int)v;
    else if (!strcmp(k, "n_ctx")) s->n_ctx = (int)v;
    else if (!strcmp(k, "fine")) s->fine = v != 0;
    else return bp_errf(e, "synthetic model '%s': unknown key '%s' (n_layer n_embd n_head vocab seq n_ctx fine)", spec, k);
    p += used;
    if (*p == ',') p++;
    else if (*p) return bp_errf(e, "synthetic model '%s': expected ',' at '%s'", spec, p);
  }
  if (s->seq > s->n_ctx) s->n_ctx = s->seq;
  return 0;
}

typedef struct {
  double mmf, mmb, of, ob, param, act, out;
} part_fig;

int bp_lcosts_gpt2(const bp_gpt2_shape *s, const bp_device_model *dev, bp_lcosts *out, bp_err *e) {
  double B = s->micro_batch, T = s->seq, C = s->n_embd, V = s->vocab, H = s->n_head, n = B * T, f4 = 4;
  int per_block = s->fine ? 2 : 1, nl = 2 + per_block * s->n_layer;
  if (bp_lcosts_alloc(out, nl, e)) return -1;
  /* figures in fp32 elements/bytes per micro-batch; forward */
  part_fig emb = {0, 0, n * C, f4 * 3 * n * C, f4 * (V + s->n_ctx) * C, 8 * n, f4 * n * C};
  part_fig attn = {
      .mmf = 2 * n * C * 3 * C + 2 * 2 * B * T * T * C + 2 * n * C * C,
      .mmb = f4 * (n * C + 3 * C * C + 3 * n * C) + f4 * (3 * n * C + 2 * B * H * T * T + n * C) + f4 * (2 * n * C + C * C),
      .of = 8 * n * C + 5 * B * H * T * T + n * C,
      .ob = f4 * (2 * n * C + 3 * B * H * T * T + 3 * n * C),
      .param = f4 * (4 * C * C + 4 * C + 2 * C),
      .act = f4 * (n * C + n * C + 3 * n * C + 2 * B * H * T * T + 2 * n * C),
      .out = f4 * n * C};
  part_fig mlp = {
      .mmf = 2 * n * C * 4 * C * 2,
      .mmb = f4 * (n * C + 4 * C * C + 4 * n * C) + f4 * (4 * n * C + 4 * C * C + n * C),
      .of = 8 * n * C + 8 * 4 * n * C + n * C,
      .ob = f4 * (2 * n * C + 2 * 4 * n * C + 3 * n * C),
      .param = f4 * (8 * C * C + 5 * C + 2 * C),
      .act = f4 * (n * C + n * C + 4 * n * C + 4 * n * C),
      .out = f4 * n * C};
  part_fig head = {.mmf = 2 * n * C * V,
                   .mmb = f4 * (n * C + V * C + n * V),
                   .of = 8 * n * C + 5 * n * V,
                   .ob = f4 * (2 * n * C + 3 * n * V),
                   .param = f4 * (V * C + 2 * C),
                   .act = f4 * (n * C + n * C + 2 * n * V),
                   .out = 0};
  const double half = 0.5;
  for (int i = 0; i < nl; i++) {
    part_fig f = {0};
    bp_lcost *c = &out->l[i];
    if (i == 0) f = emb, snprintf(c->name, sizeof c->name, "embed");
    else if (i == nl - 1) f = head, snprintf(c->name, sizeof c->name, "head");
    else {
      int b = (i - 1) / per_block;
      if (!s->fine) {
        f = attn;
        f.mmf += mlp.mmf, f.mmb += mlp.mmb, f.of += mlp.of, f.ob += mlp.ob, f.param += mlp.param, f.act += mlp.act;
        snprintf(c->name, sizeof c->name, "block%d", b);
      } else {
        int h = (i - 1) % 2;
        f = h == 0 ? attn : mlp;
        snprintf(c->name, sizeof c->name, "block%d.%s", b, h == 0 ? "attn" : "mlp");
      }
    }
    c->fwd = roofline(dev, f.mmf, f.mmb * half, f.of, f.ob * half);
    c->bwd = 2 * c->fwd;
    c->flops = f.mmf + f.of;
    c->param_bytes = f.param;
    c->state_bytes = 4 * f.param;
    c->act_bytes = f.act * half;
    c->out_bytes = f.out * half;
  }
  snprintf(out->source, sizeof out->source,
           "analytic: GPT-2 closed form (n_layer %d, n_embd %d, vocab %d, seq %d, micro-batch %d) on %s peak rates "
           "(%s), bf16, backward = 2 x forward",
           s->n_layer, s->n_embd, s->vocab, s->seq, s->micro_batch, dev->name, dev->source);
  out->link_bw = dev->link_bw, out->link_lat = dev->link_lat, out->mem_bytes = dev->mem_bytes;
  /* the LM head is wte: one parameter read by the embedding and the head */
  if (bp_lcosts_add_tied(out, 0, nl - 1, f4 * V * C, "wte", e)) {
    bp_lcosts_free(out);
    return -1;
  }
  return 0;
}
