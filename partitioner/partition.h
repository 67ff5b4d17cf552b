/* partitioner/partition.h — placing layers on a schedule's chunks: the problem, the evaluator,
 * the GLPK integer program and the exact search.
 *
 * A partition cuts the L layers into the schedule's S stages, contiguous and in order (stage s =
 * layers [first[s], first[s+1])). The schedule's program fixes which rank holds which (pipe, stage)
 * and in which order micro-batches run, so everything else follows from it, for any schedule:
 *   load_r   = sum over stages s of mult[r][s] * (fwd + bwd)(s), mult = micro-batches of the pipes
 *              whose chunk of s sits on r (1F1B: N on one rank; Chimera/BitPipe: N/2 per replica);
 *   comm     = sum over cuts of 2 * (latency + boundary bytes / link bandwidth): an activation
 *              forward and its gradient back on the fill/drain path; plus tied (below);
 *   pace     = K * max_s (fwd + bwd)(s), K = the most micro-batch passes any rank makes (N for 1F1B
 *              and Chimera, vN interleaved, 2N BitPipe): a schedule's fixed order runs in lock-step,
 *              so the critical path through the stages advances at the slowest stage's pace;
 *   proxy    = max(max_r load_r, pace) + BP_PART_TIE * max_r load_r + comm: the step-time proxy
 *              both solvers minimise. The largest load bounds the step from below, the pace bounds a
 *              lock-step order's steady state from above (for 1F1B they are equal and (N-1) max + sum
 *              is the step); the small load term chooses, among partitions that one slow stage (a
 *              heavy head) paces, the one that balances the ranks.
 *   tied     = for each tied parameter (a weight read by two layers a < b, e.g. GPT-2's wte in the
 *              embedding and the LM head), when the stage of a and the stage of b sit on different
 *              sets of ranks, the all-reduce of its gradient over the k ranks of both sets: a ring's
 *              2(k-1) latency + 2(k-1)/k bytes / link bandwidth (the simulator's all-reduce model).
 *              On the same ranks the gradients sum locally (and ride in the stage's own replica
 *              all-reduce, which the simulator counts): nothing extra. Part of comm below.
 *   memory_r = sum of the weights + gradients + optimizer state of r's chunks + the peak stash,
 *              where the peak stash is max over the rank's stash states (how many micro-batches
 *              of each chunk are stashed after each FWD of the program) of sum count * act(stage):
 *              exactly what the simulator counts, and linear in the partition for each state.
 * The evaluator also runs the simulator with one cost row per stage (step time, bubbles).
 * Errors: 0 ok, -1 with a message in err (errlen bytes); the solvers return 1 when no partition
 * meets the memory cap. */
#ifndef BITPIPE_PARTITION_H
#define BITPIPE_PARTITION_H

#include "partitioner/layer_costs.h"
#include "partitioner/schedule.h"
#include "partitioner/simulate.h"

#define BP_PART_TIE 0.01

typedef struct bp_part_problem {
  int L, S, D, N;
  const bp_lcosts *lc;
  const bp_program *prog;
  double *work;    /* [L] fwd + bwd per micro-batch */
  double *mult;    /* [D*S] */
  double *copies;  /* [D*S] chunks of stage s on rank r */
  int *nvec;       /* [D] stash states per rank (deduplicated, undominated) */
  int **vec;       /* [D][nvec*S] micro-batches of stage s stashed */
  double *comm;    /* [L]: cost of a cut after layer l */
  double K;        /* micro-batch passes of the busiest rank (the pace factor) */
  double mem_cap;  /* 0: no cap */
  int n_tied;      /* tied parameters (pairs of layers sharing a weight) */
  int *tied_a, *tied_b;  /* [n_tied] the two layers, a < b */
  double *tied_cost;     /* [n_tied*S*S]: the all-reduce's time when a is in stage s and b in t */
} bp_part_problem;

int bp_part_problem_init(bp_part_problem *pp, const bp_program *prog, const bp_lcosts *lc, double mem_cap,
                         char *err, size_t errlen);
void bp_part_problem_free(bp_part_problem *pp);

typedef struct bp_part_eval {
  double proxy, max_load, pace, comm; /* comm includes tied */
  double tied;       /* the tied parameters' gradient all-reduces (seconds per iteration) */
  double *load;      /* [D] seconds per iteration (compute) */
  double *state;     /* [D] weights + grads + optimizer state bytes */
  double *mem;       /* [D] state + peak stash */
  double peak_mem;
  int feasible;      /* every rank under the cap */
  int simulated;
  double step_time, bubble_mean, bubble_max; /* simulated; step_time + tied, since the programs have no
                                                instruction for the tied all-reduce and it can start
                                                only after the embedding's last backward */
  double *sim_mem;   /* [D] state + the simulator's peak stash bytes */
} bp_part_eval;

/* first: [S+1] with first[0] = 0 < first[1] < ... < first[S] = L. */
int bp_part_evaluate(const bp_part_problem *pp, const int *first, int simulate, bp_part_eval *ev, char *err,
                     size_t errlen);
void bp_part_eval_free(bp_part_eval *ev);
double bp_part_proxy(const bp_part_problem *pp, const int *first, double *peak_mem); /* fast, no simulator */
/* The proxy, with each rank's load and memory ([D] each). */
double bp_part_proxy_ranks(const bp_part_problem *pp, const int *first, double *load, double *mem);
/* The tied all-reduce time of a partition (part of the proxy's comm). */
double bp_part_tied(const bp_part_problem *pp, const int *first);

/* Partitions from words: uniform (layer counts as even as possible) and "0-3,4-6,..." (a range
 * per stage in pipeline order, covering 0..L-1 in order). */
void bp_part_uniform(int L, int S, int *first);
int bp_part_parse(const char *spec, int L, int S, int *first, char *err, size_t errlen);
/* "0-3,4-6,..." into buf. */
char *bp_part_format(const int *first, int S, char *buf, size_t n);

/* Exact branch-and-bound search over all partitions: the reference for tests. */
typedef struct bp_exact_info {
  double obj;
  long nodes;
  int timed_out;   /* node limit reached: obj is an upper bound only */
} bp_exact_info;
int bp_part_exact(const bp_part_problem *pp, long node_limit, int *first, bp_exact_info *info, char *err,
                  size_t errlen);

/* Before the integer program (partition_heur.c):
 *   bottleneck: the smallest possible largest stage work (fwd + bwd per micro-batch) over all
 *     partitions, memory ignored: K times it bounds the proxy's pace term from below.
 *   incumbent: a good partition (uniform, prefix-balanced and the cheapest-cut partition at the
 *     bottleneck, each improved by moving single cuts); mode 0 minimises the proxy under the cap,
 *     mode 1 the peak memory. Returns 1 with *value when one meets the cap, else 0.
 *   cut_ranges: lo[s] <= first[s] <= hi[s] for every partition whose stages each have work <= wcap,
 *     whose ranks' memory (every stash state) is <= mcap and whose ranks' loads are <= lcap (0: no
 *     such bound), by bound propagation (partition_heur.c). Returns 1 when no partition can. */
double bp_part_bottleneck(const bp_part_problem *pp);
int bp_part_incumbent(const bp_part_problem *pp, int mode, int *first, double *value);
int bp_part_cut_ranges(const bp_part_problem *pp, double wcap, double mcap, double lcap, int *lo, int *hi);
/* Among the partitions with first's proxy (or lower) that meet the cap, moves single cuts while
 * the sum of squared rank loads falls: the proxy only sees the largest load, and many optima
 * leave the other ranks needlessly uneven (which the simulator sees). bp_part_ilp calls it on
 * GLPK's optimum; the proxy, so the optimum, does not change. */
void bp_part_polish(const bp_part_problem *pp, int *first);

/* The GLPK integer program (glp_intopt). */
typedef struct bp_ilp_info {
  double obj;        /* the proxy of the solution, recomputed from it */
  double mip_obj;    /* GLPK's objective value */
  double bound;      /* GLPK's best bound on the proxy */
  double gap;        /* (obj - bound) / obj */
  double seconds;
  int rows, cols, timed_out;
  int fixed;         /* cut variables fixed before branching (bounds from the incumbent) */
  int binaries;      /* cut variables left to GLPK */
  double incumbent;  /* the heuristic incumbent's proxy given to GLPK (0: none) */
  int from_incumbent; /* GLPK's LP rejected the incumbent's tight bounds numerically: the result is
                         the incumbent, bound = K x the smallest bottleneck */
} bp_ilp_info;
typedef struct bp_ilp_opts {
  double time_limit_s; /* 0: 60 s */
  int warm_start;      /* give GLPK bp_part_incumbent's partition and fix the cuts its value rules out */
  int verbose;
} bp_ilp_opts;
int bp_part_ilp(const bp_part_problem *pp, const bp_ilp_opts *o, int *first, bp_ilp_info *info, char *err,
                size_t errlen);
/* The smallest memory cap any partition meets (the integer program minimising the peak memory). */
int bp_part_min_memory(const bp_part_problem *pp, double *bytes, int *first, char *err, size_t errlen);
/* The same with the solver's report (info->obj: the peak memory; timed_out: only an upper bound;
 * o NULL: 30 s, warm start). */
int bp_part_min_memory_info(const bp_part_problem *pp, const bp_ilp_opts *o, int *first, bp_ilp_info *info,
                            char *err, size_t errlen);

#endif
