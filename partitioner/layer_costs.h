/* partitioner/layer_costs.h — what each layer costs: forward and backward time per micro-batch,
 * parameter and optimizer-state bytes, stashed activations, boundary bytes.
 *
 * Three sources, each named in the table's `source` so every printed number says where it came from:
 *   - profiled: the layer's forward and backward nodes of the training graph run on the CPU
 *     backend, one node at a time, with the real micro-batch shape; per layer the median over
 *     repeats. Cached in a profile file keyed by model file (name, size, content hash), the bound
 *     input shapes, the caller's extra key (bindings, granularity), layer count, repeats and device
 *     (CPU model name); a hit skips the run and returns exactly the stored figures.
 *     Or profiled on another device through a node timer (bp_profile_device: the GPU's is
 *     kernels/cuda/layer_profile.h, so this library stays free of CUDA): the whole training graph
 *     runs there, each node timed, summed per layer the same way; the key's device is the timer's
 *     (GPU name + precision), and the memory cap and links come with it (see bp_profile_device).
 *   - analytic: FLOPs and bytes of the same nodes against a device model's peak rates (a roofline
 *     per part: matmuls at the tensor-core peak, everything else at the fp32 peak or HBM bandwidth,
 *     whichever binds); backward = 2 x forward. Peak rates are an optimistic bound (100% MFU).
 *   - synthetic GPT-2: the same analytic model on closed-form per-layer FLOPs/bytes of a GPT-2
 *     shape (no ONNX file needed), for models too big to commit.
 * Memory: fp32 training keeps weights + gradients + AdamW m and v = 4 x fp32 weight bytes; the
 * device models train in bf16 with fp32 master weights and AdamW = the same 16 bytes per
 * parameter, and stash activations in bf16 (half the fp32 graph's bytes). */
#ifndef BITPIPE_LAYER_COSTS_H
#define BITPIPE_LAYER_COSTS_H

#include "partitioner/layers.h"

typedef struct bp_device_model {
  const char *name;
  double fp32_flops;  /* dense FLOP/s without tensor cores */
  double bf16_flops;  /* dense bf16 tensor-core FLOP/s */
  double hbm_bw;      /* bytes/s */
  double mem_bytes;   /* device memory */
  double link_bw;     /* point-to-point bytes/s per direction (NVLink) */
  double link_lat;    /* seconds per message */
  const char *source;
} bp_device_model;

const bp_device_model *bp_device_models(int *count);
const bp_device_model *bp_device_model_find(const char *name);
/* The analytic model whose GPU a device name (e.g. cudaDeviceProp.name "NVIDIA H100 80GB HBM3")
 * names: H100, H200 or A100 in any case, except PCIe cards (their links are not the SXM parts'
 * NVLink); NULL when none matches. */
const bp_device_model *bp_device_model_match(const char *gpu_name);
/* Links assumed for a profiled GPU that matches no analytic model: PCIe 4.0 x16, 32 GB/s raw per
 * direction of which about 25 GB/s is achieved by large copies, and 10 us per message (host-staged
 * or NCCL over PCIe). An assumption, not a measurement; the table's source says so. */
#define BP_DEFAULT_LINK_BW 25e9
#define BP_DEFAULT_LINK_LAT 10e-6

typedef struct bp_lcost {
  char name[32];
  double fwd, bwd;     /* seconds per micro-batch */
  double flops;        /* forward FLOPs per micro-batch */
  double param_bytes;  /* weights */
  double state_bytes;  /* weights + gradients + optimizer state */
  double act_bytes;    /* stashed for backward, per micro-batch */
  double out_bytes;    /* sent to the next layer, per micro-batch (its gradient comes back) */
} bp_lcost;

/* A parameter read by two layers (a tied embedding / LM head): one weight, one gradient summed
 * over both readers. Its bytes are in both layers' param_bytes (each reader's rank holds a copy). */
typedef struct bp_ltied {
  int a, b;           /* the layers, a < b (a weight read by k layers gives k-1 pairs (first, other)) */
  double bytes;       /* the parameter's (= its gradient's) bytes */
  char name[64];
} bp_ltied;

typedef struct bp_lcosts {
  int n;
  bp_lcost *l;        /* [n] */
  int n_tied;
  bp_ltied *tied;     /* [n_tied] */
  char source[640];   /* "profiled on the CPU backend (median of 5, cached)", "analytic h100 bf16" */
  double link_bw, link_lat; /* 0: free links */
  double mem_bytes;   /* the device's memory, 0 unknown */
} bp_lcosts;

void bp_lcosts_free(bp_lcosts *c);
int bp_lcosts_alloc(bp_lcosts *c, int n, bp_err *e);
/* Appends a tied pair. */
int bp_lcosts_add_tied(bp_lcosts *c, int a, int b, double bytes, const char *name, bp_err *e);
/* The tied parameters of found layers: float initializers read by forward nodes of several layers
 * (the trainable ones: the layer search counted them in param_bytes). Called by analytic and
 * profile. */
int bp_lcosts_find_tied(const bp_model_layers *m, bp_lcosts *c, bp_err *e);

/* Analytic costs of found layers on a device model. */
int bp_lcosts_analytic(const bp_model_layers *m, const bp_device_model *dev, bp_lcosts *out, bp_err *e);

/* Times every node of a training graph on a device other than the CPU backend: one warm-up run of
 * the whole graph (not counted), then `repeats` timed runs; node_s[r * g->nnodes + i] = seconds
 * node i took in timed run r. Inputs are zeros (valid token ids and targets), as on the CPU. */
typedef int (*bp_node_timer_fn)(void *self, const bp_graph *g, int repeats, double *node_s, bp_err *e);

typedef struct bp_profile_device {
  bp_node_timer_fn time_nodes;
  void *self;
  const char *key;       /* the cache key's device, e.g. "gpu:NVIDIA_H100_80GB_HBM3:bf16" (no spaces) */
  const char *what;      /* for the source, e.g. "NVIDIA H100 80GB HBM3, bf16 GEMMs, CUDA events per node" */
  const char *gpu_name;  /* matched by bp_device_model_match for the links */
  double mem_bytes;      /* the device's memory: the partition's memory cap */
} bp_profile_device;

typedef struct bp_profile_opts {
  int repeats;             /* default 5 */
  const char *cache_path;  /* NULL: $BITPIPE_PROFILE_CACHE or ~/.cache/bitpipe/profiles.txt; "" no cache */
  const char *key_extra;   /* bindings etc. in the key */
  int *cache_hit;          /* out (or NULL) */
  const bp_profile_device *device; /* NULL: the CPU backend, here */
} bp_profile_opts;

/* Profiled costs on the CPU backend or o->device (see above). */
int bp_lcosts_profile(const bp_model_layers *m, const bp_profile_opts *o, bp_lcosts *out, bp_err *e);

/* Closed-form GPT-2 layers: embedding, n_layer blocks (fine: attention and MLP halves), head +
 * cross-entropy; tied LM head (the head holds a copy of wte). */
typedef struct bp_gpt2_shape {
  int n_layer, n_embd, n_head, vocab, seq, n_ctx;
  int micro_batch;
  int fine;
} bp_gpt2_shape;
/* Parses "gpt2:n_layer=12,n_embd=768,vocab=50304,seq=1024[,n_head=12][,fine=1]" (defaults:
 * GPT-2 124M). */
int bp_gpt2_shape_parse(const char *spec, bp_gpt2_shape *s, bp_err *e);
int bp_lcosts_gpt2(const bp_gpt2_shape *s, const bp_device_model *dev, bp_lcosts *out, bp_err *e);

#endif
