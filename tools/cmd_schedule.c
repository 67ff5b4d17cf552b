/* tools/cmd_schedule.c — `bitpipec schedule`: generate a pipeline schedule, validate it,
 * simulate it, and print or render the result; `--compare` tabulates every schedule. */
#include "partitioner/schedule.h"
#include "partitioner/simulate.h"
#include "tools/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
  int n = 0;
  const bp_schedule_info *all = bp_schedule_list(&n);
  fprintf(f,
          "usage: bitpipec schedule --schedule NAME -D RANKS -N MICROBATCHES [options]\n"
          "       bitpipec schedule --compare -D RANKS -N MICROBATCHES [options]\n"
          "\n"
          "Generates a per-rank instruction program, proves it well formed (dependencies, matched\n"
          "send/recv, no deadlock under blocking p2p), and simulates it.\n"
          "\n"
          "  --schedule NAME   one of:\n");
  for (int i = 0; i < n; i++)
    fprintf(f, "                      %-15s %s [%s]\n", all[i].name, all[i].summary, all[i].requires);
  fprintf(f,
          "  -D N, -N N        pipeline ranks, micro-batches per iteration\n"
          "  --chunks V        chunks per rank for 'interleaved' (default 2)\n"
          "  --fwd T --bwd T   forward / backward time of one full stage (L/D layers) per\n"
          "                    micro-batch (default 1 and 2; any time unit)\n"
          "  --wgrad-frac F    zb-*: share of the backward spent in the weight gradient (0.5)\n"
          "  --costs FILE      per-layer (or per-chunk) costs: lines `fwd bwd [act_bytes\n"
          "                    [param_bytes [out_bytes]]]`; replaces --fwd/--bwd\n"
          "  --act-bytes B     stashed activations of one micro-batch over one full stage\n"
          "  --param-bytes B   weights of one full stage (for all-reduce volume and time)\n"
          "  --msg-bytes B     one p2p message (activation or gradient of one micro-batch)\n"
          "  --latency T --bandwidth B   link model (bytes per time unit); free if not given\n"
          "  --ascii           print the timeline      --print   print the instruction lists\n"
          "  --svg FILE        write an SVG timeline   --trace FILE  write a Chrome/Perfetto trace\n"
          "  --json            print the simulated figures as JSON\n"
          "  --compare         one table row per schedule\n"
          "  --help            this text\n");
}

typedef struct {
  const char *schedule, *svg, *trace, *costs;
  int D, N, chunks, ascii, json, compare, print;
  bp_sim_config sim;
} opts;

static int parse_num(const char *flag, const char *s, double *out) {
  char *end;
  *out = strtod(s, &end);
  if (!*s || *end) {
    fprintf(stderr, "bitpipec schedule: %s wants a number, got '%s'\n", flag, s);
    return -1;
  }
  return 0;
}

static int parse(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  bp_sim_config_default(&o->sim);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
    if (!strcmp(a, "--ascii")) { o->ascii = 1; continue; }
    if (!strcmp(a, "--json")) { o->json = 1; continue; }
    if (!strcmp(a, "--compare")) { o->compare = 1; continue; }
    if (!strcmp(a, "--print")) { o->print = 1; continue; }
    if (i + 1 >= argc) {
      fprintf(stderr, "bitpipec schedule: unknown option or missing value: %s\n", a);
      return -1;
    }
    const char *v = argv[++i];
    double x = 0;
    if (!strcmp(a, "--schedule")) o->schedule = v;
    else if (!strcmp(a, "--svg")) o->svg = v;
    else if (!strcmp(a, "--trace")) o->trace = v;
    else if (!strcmp(a, "--costs")) o->costs = v;
    else if (parse_num(a, v, &x)) return -1;
    else if (!strcmp(a, "-D")) o->D = (int)x;
    else if (!strcmp(a, "-N")) o->N = (int)x;
    else if (!strcmp(a, "--chunks")) o->chunks = (int)x;
    else if (!strcmp(a, "--fwd")) o->sim.fwd = x;
    else if (!strcmp(a, "--bwd")) o->sim.bwd = x;
    else if (!strcmp(a, "--wgrad-frac")) o->sim.wgrad_frac = x;
    else if (!strcmp(a, "--act-bytes")) o->sim.act_bytes = x;
    else if (!strcmp(a, "--param-bytes")) o->sim.param_bytes = x;
    else if (!strcmp(a, "--msg-bytes")) o->sim.msg_bytes = x;
    else if (!strcmp(a, "--latency")) o->sim.latency = x;
    else if (!strcmp(a, "--bandwidth")) o->sim.bandwidth = x;
    else {
      fprintf(stderr, "bitpipec schedule: unknown option %s\n", a);
      return -1;
    }
  }
  if (o->D < 1 || o->N < 1) {
    fprintf(stderr, "bitpipec schedule: -D and -N are required (positive integers)\n");
    return -1;
  }
  if (!o->compare && !o->schedule) {
    fprintf(stderr, "bitpipec schedule: --schedule NAME or --compare is required\n");
    return -1;
  }
  if (o->sim.fwd < 0 || o->sim.bwd < 0 || o->sim.wgrad_frac < 0 || o->sim.wgrad_frac > 1) {
    fprintf(stderr, "bitpipec schedule: --fwd/--bwd must be >= 0, --wgrad-frac in [0,1]\n");
    return -1;
  }
  return 0;
}

/* Generates, validates and simulates one schedule. Returns 0, 1 when the generator rejects
 * (D, N), 2 when validation or simulation fails (a bug). */
static int run_one(const char *name, const opts *o, bp_program *p, bp_sim_result *s, char *err,
                   size_t errlen) {
  bp_sched_params sp = {o->D, o->N, o->chunks};
  if (bp_schedule_generate(name, &sp, p, err, errlen)) return 1;
  if (bp_validate(p, err, errlen)) return 2;
  return bp_simulate(p, &o->sim, s, err, errlen) ? 2 : 0;
}

static void cost_line(FILE *f, const opts *o) {
  if (o->costs)
    fprintf(f, "costs from %s", o->costs);
  else
    fprintf(f, "fwd %g, bwd %g per full stage (L/D layers) per micro-batch", o->sim.fwd, o->sim.bwd);
  if (o->sim.bandwidth > 0 || o->sim.latency > 0)
    fprintf(f, "; links: latency %g, bandwidth %g bytes/unit", o->sim.latency, o->sim.bandwidth);
  else
    fprintf(f, "; communication free");
}

static void print_json(FILE *f, const bp_program *p, const bp_sim_result *s, const opts *o) {
  fprintf(f, "{\n  \"schedule\": \"%s\", \"D\": %d, \"N\": %d, \"stages\": %d, \"pipes\": %d, "
             "\"chunks_per_rank\": %d,\n", p->schedule, p->D, p->N, p->n_stages, p->n_pipes,
          p->chunks_per_rank);
  fprintf(f, "  \"figures\": \"simulated\", \"time_unit\": \"unit of --fwd/--bwd\", \"fwd\": %g, "
             "\"bwd\": %g,\n", o->sim.fwd, o->sim.bwd);
  fprintf(f, "  \"step_time\": %.6g,\n  \"bubble_ratio\": {\"mean\": %.6f, \"max\": %.6f, "
             "\"per_rank\": [", s->step_time, s->bubble_mean, s->bubble_max);
  for (int r = 0; r < p->D; r++) fprintf(f, "%s%.6f", r ? ", " : "", s->bubble[r]);
  fprintf(f, "]},\n  \"peak_activations\": {\"unit\": \"micro-batch x chunk\", \"per_rank\": [");
  for (int r = 0; r < p->D; r++) fprintf(f, "%s%d", r ? ", " : "", s->peak_chunks[r]);
  fprintf(f, "],\n    \"full_stage_units_per_rank\": [");
  for (int r = 0; r < p->D; r++) fprintf(f, "%s%g", r ? ", " : "", s->peak_stage[r]);
  fprintf(f, "], \"bytes_per_rank\": [");
  for (int r = 0; r < p->D; r++) fprintf(f, "%s%.0f", r ? ", " : "", s->peak_bytes[r]);
  fprintf(f, "]},\n  \"comm\": {\"p2p_messages\": %ld, \"p2p_bytes\": %.0f, \"local_copies\": %ld, "
             "\"allreduce_full_stage_weights\": %g, \"allreduce_bytes\": %.0f}\n}\n",
          s->p2p_messages, s->p2p_bytes, s->local_copies, s->allreduce_stage, s->allreduce_bytes);
}

static void print_summary(FILE *f, const bp_program *p, const bp_sim_result *s, const opts *o) {
  fprintf(f, "schedule %s: D=%d N=%d, %d stages, %d pipe(s), %d chunk(s)/rank — valid\n",
          p->schedule, p->D, p->N, p->n_stages, p->n_pipes, p->chunks_per_rank);
  fprintf(f, "simulated with ");
  cost_line(f, o);
  fprintf(f, "\n  step time          %.4g time units (simulated)\n", s->step_time);
  fprintf(f, "  bubble ratio       mean %.4f, max %.4f (simulated idle / step time)\n",
          s->bubble_mean, s->bubble_max);
  fprintf(f, "  per rank           ");
  for (int r = 0; r < p->D; r++) fprintf(f, "%s%.3f", r ? " " : "", s->bubble[r]);
  fprintf(f, "\n  peak activations   ");
  for (int r = 0; r < p->D; r++) fprintf(f, "%s%d", r ? " " : "", s->peak_chunks[r]);
  fprintf(f, " (micro-batch x chunk, per rank; one chunk = %g of L/D layers)\n",
          (double)p->D / p->n_stages);
  if (o->sim.act_bytes > 0 || o->costs) {
    fprintf(f, "  peak act. bytes    ");
    for (int r = 0; r < p->D; r++) fprintf(f, "%s%.0f", r ? " " : "", s->peak_bytes[r]);
    fprintf(f, " bytes per rank\n");
  }
  fprintf(f, "  p2p                %ld messages per step", s->p2p_messages);
  if (s->p2p_bytes > 0) fprintf(f, ", %.0f bytes", s->p2p_bytes);
  fprintf(f, "; %ld local hand-overs\n", s->local_copies);
  fprintf(f, "  gradient all-reduce %g full-stage weight volumes sent per step (all ranks)",
          s->allreduce_stage);
  if (s->allreduce_bytes > 0) fprintf(f, ", %.0f bytes", s->allreduce_bytes);
  fprintf(f, "\n");
}

static int compare(const opts *o) {
  int n = 0, failed = 0;
  const bp_schedule_info *all = bp_schedule_list(&n);
  printf("bitpipec schedule --compare: D=%d N=%d; all figures simulated with ", o->D, o->N);
  cost_line(stdout, o);
  printf("\n%-15s %12s %12s %12s %14s %14s %12s %14s\n", "schedule", "step time", "bubble",
         "bubble", "peak act.", "peak act.", "p2p msgs", "all-reduce");
  printf("%-15s %12s %12s %12s %14s %14s %12s %14s\n", "", "(time units)", "mean", "max",
         "(L/D-layer mb)", "(mb x chunk)", "(per step)", "(stage weights)");
  for (int i = 0; i < n; i++) {
    bp_program p;
    bp_sim_result s;
    char err[512];
    memset(&s, 0, sizeof s);
    int why = run_one(all[i].name, o, &p, &s, err, sizeof err);
    if (why) {
      printf("%-15s %s: %s\n", all[i].name, why == 1 ? "n/a" : "ERROR", err);
      bp_program_free(&p);
      failed |= why == 2;
      continue;
    }
    double peak = 0;
    int peakc = 0;
    for (int r = 0; r < p.D; r++) {
      if (s.peak_stage[r] > peak) peak = s.peak_stage[r];
      if (s.peak_chunks[r] > peakc) peakc = s.peak_chunks[r];
    }
    char name[40];
    if (p.chunks_per_rank > 1 && !strcmp(all[i].name, "interleaved"))
      snprintf(name, sizeof name, "%s v=%d", all[i].name, p.chunks_per_rank);
    else
      snprintf(name, sizeof name, "%s", all[i].name);
    printf("%-15s %12.4g %12.4f %12.4f %14g %14d %12ld %14g\n", name, s.step_time, s.bubble_mean,
           s.bubble_max, peak, peakc, s.p2p_messages, s.allreduce_stage);
    bp_sim_result_free(&s);
    bp_program_free(&p);
  }
  return failed;
}

static int write_file(const char *path, const bp_program *p, const bp_sim_result *s,
                      int (*render)(FILE *, const bp_program *, const bp_sim_result *)) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return -1;
  }
  int rc = render(f, p, s);
  if (fclose(f) != 0) rc = -1;
  if (rc) fprintf(stderr, "bitpipec schedule: could not write %s\n", path);
  return rc;
}

int bp_cmd_schedule(int argc, char **argv) {
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc) {
    usage(rc > 0 ? stdout : stderr);
    return rc > 0 ? 0 : 2;
  }
  bp_costs costs = {0, NULL};
  char err[1024];
  if (o.costs) {
    if (bp_costs_load(o.costs, &costs, err, sizeof err)) {
      fprintf(stderr, "bitpipec schedule: %s\n", err);
      return 1;
    }
    o.sim.costs = &costs;
  }
  if (o.compare) {
    rc = compare(&o);
    bp_costs_free(&costs);
    return rc;
  }
  bp_program p;
  bp_sim_result s;
  memset(&s, 0, sizeof s);
  if (run_one(o.schedule, &o, &p, &s, err, sizeof err)) {
    fprintf(stderr, "bitpipec schedule: %s\n", err);
    bp_program_free(&p);
    bp_costs_free(&costs);
    return 1;
  }
  if (o.print) bp_program_print(stdout, &p);
  if (o.json)
    print_json(stdout, &p, &s, &o);
  else
    print_summary(stdout, &p, &s, &o);
  if (o.ascii) {
    printf("\ntimeline (simulated; F forward, B backward, b input-grad, W weight-grad, "
           "<mb>.c<chunk>, ~ running, . idle):\n");
    bp_render_ascii(stdout, &p, &s, 0);
  }
  rc = 0;
  if (o.svg && write_file(o.svg, &p, &s, bp_render_svg)) rc = 1;
  if (o.trace && write_file(o.trace, &p, &s, bp_render_trace)) rc = 1;
  bp_sim_result_free(&s);
  bp_program_free(&p);
  bp_costs_free(&costs);
  return rc;
}
