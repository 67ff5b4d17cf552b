/* partitioner/simulate.h — replaying a bp_program in simulated time, and rendering the result.
 *
 * Cost model
 *   - Compute: `fwd` and `bwd` are the forward and backward time of one full pipeline stage
 *     (L/D layers) for one micro-batch. A schedule whose micro-batches pass S stages gives each
 *     chunk D/S of that (interleaved v: 1/v; BitPipe: 1/2). With split backward, BWD_WEIGHT
 *     takes `wgrad_frac` of bwd and BWD_INPUT the rest. A cost table (bp_costs_load) replaces
 *     these with per-layer or per-chunk figures.
 *   - Point-to-point: a send is posted when the rank reaches it and never blocks the sender
 *     (asynchronous transfers, as the runtime does them); the message arrives latency +
 *     bytes/bandwidth later; a receive waits for the arrival. Local hand-overs cost `local_copy`.
 *   - All-reduce of a replicated stage among k replicas starts when the last replica starts it
 *     and takes a ring's 2(k-1) latency + 2(k-1)/k * bytes/bandwidth; ALLREDUCE_WAIT waits for
 *     its end.
 *   - Links are free when bandwidth is 0 (the default): then uniform-cost runs reproduce the
 *     closed forms of the papers exactly.
 * Times are in whatever unit fwd/bwd are given in; everything reported is simulated.
 */
#ifndef BITPIPE_SIMULATE_H
#define BITPIPE_SIMULATE_H

#include "partitioner/schedule.h"

/* One row of a cost table: a layer (or a chunk when the table has one row per stage). */
typedef struct bp_layer_cost {
  double fwd, bwd;    /* time per micro-batch */
  double act_bytes;   /* activations stashed per micro-batch */
  double param_bytes; /* weights (= gradient) bytes */
  double out_bytes;   /* bytes of the output handed to the next layer per micro-batch */
} bp_layer_cost;

typedef struct bp_costs {
  int n;                /* rows */
  bp_layer_cost *layer; /* [n] */
} bp_costs;

/* Reads a cost table: one row per line, `fwd bwd [act_bytes [param_bytes [out_bytes]]]`, '#'
 * starts a comment. Rows are layers in model order; a program with S stages needs S to divide
 * the row count, and chunk s sums rows [s*n/S, (s+1)*n/S). */
int bp_costs_load(const char *path, bp_costs *out, char *err, size_t errlen);
void bp_costs_free(bp_costs *c);

typedef struct bp_sim_config {
  double fwd, bwd;         /* per full stage (L/D layers), per micro-batch */
  double wgrad_frac;       /* split backward: share of bwd spent in BWD_WEIGHT (0..1) */
  const bp_costs *costs;   /* optional: replaces fwd/bwd/bytes with a table */
  double act_bytes;        /* per full stage, per micro-batch; 0 = unknown */
  double param_bytes;      /* weights of one full stage; 0 = unknown */
  double msg_bytes;        /* one p2p message (activation or its gradient); 0 = unknown */
  double latency;          /* per message */
  double bandwidth;        /* bytes per time unit; 0 = free links */
  double local_copy;       /* time of a LOCAL hand-over */
  double optimizer;        /* time of the optimizer step */
} bp_sim_config;

/* Defaults: fwd 1, bwd 2, wgrad_frac 0.5, everything else 0 (free). */
void bp_sim_config_default(bp_sim_config *c);

typedef struct bp_sim_result {
  int D;
  double step_time;        /* end of the last rank's optimizer step */
  double *busy;            /* [D] compute time */
  double *bubble;          /* [D] (step_time - busy) / step_time */
  double bubble_mean, bubble_max;
  int *peak_chunks;        /* [D] peak stashed (chunk, micro-batch) activations */
  double *peak_stage;      /* [D] the same in Ma: activations of one micro-batch over L/D layers */
  double *peak_bytes;      /* [D] in bytes when activation sizes are known, else 0 */
  long p2p_messages;       /* per step, all ranks */
  double p2p_bytes;        /* per step, all ranks (0 when sizes unknown) */
  long local_copies;
  double allreduce_stage;  /* bytes each rank sends in all-reduces, in Mtheta (weights of L/D
                              layers), summed over ranks */
  double allreduce_bytes;  /* the same in bytes when known */
  double **start, **end;   /* [D][n]: simulated times of every instruction */
} bp_sim_result;

/* Replays p (which should have passed bp_validate). Fails if a rank can never proceed. */
int bp_simulate(const bp_program *p, const bp_sim_config *cfg, bp_sim_result *out, char *err,
                size_t errlen);
void bp_sim_result_free(bp_sim_result *r);
/* Compute time of one instruction under cfg (0 for non-compute ops). */
double bp_sim_op_time(const bp_program *p, const bp_sim_config *cfg, int r, const bp_instr *x);

/* ---- renderers ----------------------------------------------------------------------------- */

/* ASCII timeline: one row per rank, one column per `unit` of time (0: the shortest compute
 * op). Cells show "F3.c1" at the start of an op, "~" while it runs, "." when idle. */
void bp_render_ascii(FILE *f, const bp_program *p, const bp_sim_result *s, double unit);
/* Chrome trace event JSON (chrome://tracing, ui.perfetto.dev): one thread per rank. */
int bp_render_trace(FILE *f, const bp_program *p, const bp_sim_result *s);
/* SVG: one lane per rank, coloured by op kind and direction, with a legend and time axis. */
int bp_render_svg(FILE *f, const bp_program *p, const bp_sim_result *s);

#endif
