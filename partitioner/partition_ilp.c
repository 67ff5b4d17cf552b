/* partitioner/partition_ilp.c — the partition as a GLPK mixed-integer program (glp_intopt).
 *
 * Variables: u[l][s] in {0,1} for layers l and stages s < S-1, u = 1 iff layer l lies in stage <= s
 * (u[l][S-1] = 1), i.e. iff l < first[s+1]: the cut positions as prefix indicators. T, M >= 0
 * continuous (the pace, the largest load); z >= 0 continuous for the tied parameters. x[l][s] =
 * u[l][s] - u[l][s-1] says layer l is in stage s.
 *   u[l][s] <= u[l][s+1]                   (a layer is in one stage)
 *   u[l+1][s] <= u[l][s]                   (stages are contiguous and in order)
 *   sum_s u[l][s] - sum_s u[l+1][s] <= 1   (consecutive layers are at most one stage apart)
 *   M >= sum_s mult[r][s] sum_l work[l] x[l][s]                         for each rank r
 *   T >= K sum_l work[l] x[l][s]                                        for each stage s
 *   sum_s copies[r][s] state(s) + sum_s count_k[s] act(s) <= cap         for each rank r, stash state k
 *   z[i][s][t] >= x[a_i][s] + x[b_i][t] - 1                              for each tied pair i, stages s, t
 * Objective: T + BP_PART_TIE M + sum_l comm[l] * (stage(l+1) - stage(l)) + sum tied_cost z, the proxy
 * of partition.h (T >= M is implied: every rank's load is at most K times the largest stage).
 *
 * What makes it fast (128 layers x 32 stages in well under a second instead of tens of seconds):
 *   - T >= K * bottleneck (the exact smallest largest stage, by dynamic programming), so the LP
 *     bound starts at the pace the integers can reach rather than at the fractional average.
 *   - An incumbent (bp_part_incumbent) of value UB, given to GLPK at the root. Any better
 *     partition has K w_s <= UB - TIE * N * total / D - (the S-1 cheapest cuts) for every stage,
 *     its ranks' loads M <= (UB - K * bottleneck - the cheapest cuts) / TIE, and it fits the cap;
 *     bp_part_cut_ranges propagates those bounds into a range for each cut, and every u outside
 *     its range is a constant, not a column. T and M get the same upper bounds.
 *   - Ranks with identical rows (BitPipe's and Chimera's mirrored pairs) give one row.
 * Times are scaled so the total work is 1000 and bytes by the cap, to keep GLPK's tolerances
 * meaningful. The minimum-memory variant minimises T >= memory of every rank instead (ranges from
 * the incumbent's peak). */
#include "partitioner/partition.h"

#include <glpk.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  double *x0; /* incumbent, 1-based over columns, or NULL */
  double bound;
  int have_bound;
} cb_data;

static void callback(glp_tree *tree, void *info) {
  cb_data *d = info;
  int node = glp_ios_best_node(tree);
  if (node) d->bound = glp_ios_node_bound(tree, node), d->have_bound = 1;
  /* GLPK does not check a heuristic solution's rows: x0 is a partition that meets every row */
  if (glp_ios_reason(tree) == GLP_IHEUR && d->x0 && glp_ios_curr_node(tree) == 1) glp_ios_heur_sol(tree, d->x0);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The model under construction: u[l][s] is a column (col > 0) or a constant (val). */
typedef struct {
  int L, S, ncols;
  int *col;          /* [L*(S-1)] */
  signed char *val;  /* [L*(S-1)] the constant of a fixed u */
  double *coef;      /* [ncols+1] dense row under construction */
  double k;          /* its constant part */
  int *ind;
  double *v;
} model;

static void row_clear(model *m) {
  memset(m->coef, 0, sizeof(double) * (size_t)(m->ncols + 1));
  m->k = 0;
}

static void add_u(model *m, int l, int s, double a) {
  if (s >= m->S - 1) {
    m->k += a;
    return;
  }
  if (s < 0) return;
  size_t i = (size_t)l * (m->S - 1) + s;
  if (m->col[i]) m->coef[m->col[i]] += a;
  else m->k += a * m->val[i];
}

/* a * x[l][s] */
static void add_x(model *m, int l, int s, double a) { add_u(m, l, s, a), add_u(m, l, s - 1, -a); }

/* Adds the row under construction as `coef . x + k <= up` (or `== ...` with fx); a row with no
 * column left is checked instead (it must hold). Returns the row, 0 when none was added, -1
 * when a constant row does not hold. */
static int row_add(glp_prob *P, model *m, double up) {
  int n = 0;
  for (int j = 1; j <= m->ncols; j++)
    if (m->coef[j] != 0) m->ind[++n] = j, m->v[n] = m->coef[j];
  if (n == 0) return m->k <= up + 1e-9 * (1 + fabs(up)) ? 0 : -1;
  int row = glp_add_rows(P, 1);
  glp_set_mat_row(P, row, n, m->ind, m->v);
  glp_set_row_bnds(P, row, GLP_UP, 0, up - m->k);
  return row;
}

/* Identical coefficient vectors (over S doubles) give one row. */
static int same_vec(const double *a, const double *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

static int stage_of(const int *first, int S, int l) {
  int s = 0;
  while (s + 1 < S && first[s + 1] <= l) s++;
  return s;
}

/* mode 0: minimise the proxy under the cap; 1: minimise the peak memory. */
static int solve(const bp_part_problem *pp, const bp_ilp_opts *o, int mode, int *first, bp_ilp_info *info,
                 char *err, size_t errlen) {
  int L = pp->L, S = pp->S, D = pp->D, rc = -1, T_ = pp->n_tied;
  memset(info, 0, sizeof *info);
  double t0 = now_s();
  if (S == 1) { /* nothing to choose */
    first[0] = 0, first[1] = L;
    double peak;
    info->obj = info->mip_obj = info->bound = bp_part_proxy(pp, first, &peak);
    if (mode == 1) info->obj = info->mip_obj = info->bound = peak;
    if (mode == 0 && pp->mem_cap > 0 && peak > pp->mem_cap) return 1;
    return 0;
  }
  double total = 0, memscale = 1;
  for (int l = 0; l < L; l++) total += pp->work[l] * pp->N;
  double ts = total > 0 ? 1000.0 / total : 1;
  if (mode == 0 && pp->mem_cap > 0) memscale = 1.0 / pp->mem_cap;
  if (mode == 1) {
    double m = 0;
    for (int l = 0; l < L; l++) m += pp->lc->l[l].state_bytes + pp->lc->l[l].act_bytes * pp->N;
    memscale = m > 0 ? 1000.0 / m : 1;
  }
  glp_prob *P = NULL;
  model m = {.L = L, .S = S};
  cb_data cbd = {0};
  int nu = L * (S - 1);
  int *lo = calloc((size_t)S + 1, sizeof(int)), *hi = calloc((size_t)S + 1, sizeof(int));
  int *inc = calloc((size_t)S + 1, sizeof(int)), *zcol = NULL;
  m.col = calloc((size_t)nu, sizeof(int));
  m.val = calloc((size_t)nu, 1);
  if (!lo || !hi || !inc || !m.col || !m.val) goto oom;

  /* bounds: the bottleneck, an incumbent, and the cut ranges they leave */
  double wstar = mode == 0 ? bp_part_bottleneck(pp) : 0, ub = INFINITY, wcap = 0, lcap = 0;
  int have_inc = (!o || o->warm_start) && bp_part_incumbent(pp, mode, inc, &ub);
  if (have_inc) info->incumbent = ub;
  if (have_inc && mode == 0) {
    double clb = 0, *cc = malloc(sizeof(double) * (size_t)L);
    if (!cc) goto oom;
    for (int l = 0; l + 1 < L; l++) cc[l] = pp->comm[l];
    for (int i = 0; i < S - 1; i++) { /* the S-1 cheapest cuts (selection; S is small) */
      int b = i;
      for (int j = i + 1; j + 1 < L; j++)
        if (cc[j] < cc[b]) b = j;
      double t = cc[i];
      cc[i] = cc[b], cc[b] = t;
      clb += cc[i];
    }
    free(cc);
    wcap = (ub * (1 + 1e-6) - BP_PART_TIE * total / D - clb) / pp->K;
    if (wcap < wstar) wcap = wstar; /* rounding: the incumbent itself stays inside */
    wcap *= 1 + 1e-12;
    /* and the load term: TIE M <= UB - K bottleneck - the cheapest cuts */
    double ml = 0, load[D], mem[D];
    bp_part_proxy_ranks(pp, inc, load, mem);
    for (int r = 0; r < D; r++) ml = fmax(ml, load[r]);
    lcap = (ub * (1 + 1e-6) - pp->K * wstar - clb) / BP_PART_TIE;
    if (lcap < ml) lcap = ml;
    lcap *= 1 + 1e-12;
  }
  double mcap = mode == 1 ? (have_inc ? ub * (1 + 1e-6) : 0) : pp->mem_cap;
  int rr = bp_part_cut_ranges(pp, wcap, mcap, lcap, lo, hi);
  if (rr == 1 && have_inc) { /* the incumbent fits these bounds: only rounding can say otherwise */
    wcap = lcap = 0;
    rr = bp_part_cut_ranges(pp, 0, mcap, 0, lo, hi);
  }
  if (rr == 1) {
    rc = 1; /* no stage layout fits the cap at all */
    goto done;
  }
  if (rr < 0) goto oom;

  /* columns: the free u, then T, M, then the tied z */
  int nc = 0;
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S - 1; s++) {
      size_t i = (size_t)l * (S - 1) + s;
      if (l < lo[s + 1]) m.val[i] = 1;
      else if (l >= hi[s + 1]) m.val[i] = 0;
      else m.col[i] = ++nc;
    }
  info->fixed = nu - nc, info->binaries = nc;
  int colT = ++nc, colM = ++nc;
  /* tied pairs: the stages each layer can be in, and the (s, t) with a cost */
  int nz = 0;
  double tied_const = 0;
  zcol = calloc((size_t)(T_ > 0 ? T_ : 1) * S * S, sizeof(int));
  if (!zcol) goto oom;
  for (int i = 0; i < T_ && mode == 0; i++) {
    int a = pp->tied_a[i], b = pp->tied_b[i], sa0 = S, sa1 = -1, sb0 = S, sb1 = -1;
    for (int s = 0; s < S; s++) { /* s possible for l iff lo[s] <= l < hi[s+1] */
      if (lo[s] <= a && a < hi[s + 1]) sa0 = s < sa0 ? s : sa0, sa1 = s;
      if (lo[s] <= b && b < hi[s + 1]) sb0 = s < sb0 ? s : sb0, sb1 = s;
    }
    if (sa0 == sa1 && sb0 == sb1) {
      tied_const += pp->tied_cost[((size_t)i * S + sa0) * S + sb0];
      continue;
    }
    for (int s = sa0; s <= sa1; s++)
      for (int t = sb0; t <= sb1; t++)
        if (pp->tied_cost[((size_t)i * S + s) * S + t] > 0) zcol[((size_t)i * S + s) * S + t] = ++nc, nz++;
  }
  m.ncols = nc;
  m.coef = calloc((size_t)nc + 1, sizeof(double));
  m.v = calloc((size_t)nc + 1, sizeof(double));
  m.ind = calloc((size_t)nc + 1, sizeof(int));
  cbd.x0 = have_inc ? calloc((size_t)nc + 1, sizeof(double)) : NULL;
  P = glp_create_prob();
  if (!m.coef || !m.v || !m.ind || (have_inc && !cbd.x0) || !P) goto oom;
  glp_set_prob_name(P, "bitpipe-partition");
  glp_set_obj_dir(P, GLP_MIN);
  glp_add_cols(P, nc);
  for (int j = 1; j < colT; j++) glp_set_col_kind(P, j, GLP_BV);
  glp_set_col_kind(P, colT, GLP_CV);
  glp_set_obj_coef(P, colT, 1);
  if (mode == 0) {
    double tlo = pp->K * wstar * ts, tup = wcap > 0 ? pp->K * wcap * ts : 0;
    if (!isfinite(tlo)) tlo = 0;
    tlo *= 1 - 1e-9;
    if (tup > tlo) glp_set_col_bnds(P, colT, GLP_DB, tlo, tup);
    else glp_set_col_bnds(P, colT, GLP_LO, tlo, 0);
  } else {
    glp_set_col_bnds(P, colT, GLP_LO, 0, 0);
  }
  glp_set_col_kind(P, colM, GLP_CV); /* M, the largest load */
  if (mode == 0 && lcap > 0) glp_set_col_bnds(P, colM, GLP_DB, 0, lcap * ts);
  else glp_set_col_bnds(P, colM, mode == 0 ? GLP_LO : GLP_FX, 0, 0);
  glp_set_obj_coef(P, colM, mode == 0 ? BP_PART_TIE : 0);
  for (int j = colM + 1; j <= nc; j++) glp_set_col_kind(P, j, GLP_CV), glp_set_col_bnds(P, j, GLP_LO, 0, 0);
  /* the objective's linear part: communication over the cuts, and the tied z */
  double obj0 = 0;
  if (mode == 0) {
    row_clear(&m);
    for (int l = 0; l + 1 < L; l++)
      for (int s = 0; s < S - 1; s++) add_u(&m, l, s, pp->comm[l] * ts), add_u(&m, l + 1, s, -pp->comm[l] * ts);
    for (int j = 1; j <= nc; j++)
      if (m.coef[j] != 0) glp_set_obj_coef(P, j, m.coef[j]);
    obj0 = m.k + tied_const * ts;
    for (int i = 0; i < T_; i++)
      for (int s = 0; s < S; s++)
        for (int t = 0; t < S; t++) {
          int j = zcol[((size_t)i * S + s) * S + t];
          if (j) glp_set_obj_coef(P, j, pp->tied_cost[((size_t)i * S + s) * S + t] * ts);
        }
  }
  glp_set_obj_coef(P, 0, obj0);
  /* the staircase */
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S - 1; s++) {
      if (s + 1 < S - 1) {
        row_clear(&m), add_u(&m, l, s, 1), add_u(&m, l, s + 1, -1);
        if (row_add(P, &m, 0) < 0) goto inconsistent;
      }
      if (l + 1 < L) {
        row_clear(&m), add_u(&m, l + 1, s, 1), add_u(&m, l, s, -1);
        if (row_add(P, &m, 0) < 0) goto inconsistent;
      }
    }
  for (int l = 0; l + 1 < L; l++) {
    row_clear(&m);
    for (int s = 0; s < S - 1; s++) add_u(&m, l, s, 1), add_u(&m, l + 1, s, -1);
    if (row_add(P, &m, 1) < 0) goto inconsistent;
  }
  if (mode == 0) {
    for (int r = 0; r < D; r++) { /* M >= load_r, once per distinct rank */
      int dup = 0;
      for (int q = 0; q < r && !dup; q++) dup = same_vec(pp->mult + q * S, pp->mult + r * S, S);
      if (dup) continue;
      row_clear(&m);
      for (int s = 0; s < S; s++)
        if (pp->mult[r * S + s] != 0)
          for (int l = 0; l < L; l++) add_x(&m, l, s, pp->mult[r * S + s] * pp->work[l] * ts);
      m.coef[colM] = -1;
      if (row_add(P, &m, 0) < 0) goto inconsistent;
    }
    for (int s = 0; s < S; s++) { /* T >= pace of stage s */
      row_clear(&m);
      for (int l = 0; l < L; l++) add_x(&m, l, s, pp->K * pp->work[l] * ts);
      m.coef[colT] = -1;
      if (row_add(P, &m, 0) < 0) goto inconsistent;
    }
    for (int i = 0; i < T_; i++) /* z >= x[a][s] + x[b][t] - 1 */
      for (int s = 0; s < S; s++)
        for (int t = 0; t < S; t++) {
          int j = zcol[((size_t)i * S + s) * S + t];
          if (!j) continue;
          row_clear(&m), add_x(&m, pp->tied_a[i], s, 1), add_x(&m, pp->tied_b[i], t, 1);
          m.coef[j] = -1;
          if (row_add(P, &m, 1) < 0) goto inconsistent;
        }
  }
  if (mode == 1 || pp->mem_cap > 0) {
    for (int r = 0; r < D; r++) {
      int dup = 0; /* a rank holding the same stages with the same stash states as an earlier one */
      for (int q = 0; q < r && !dup; q++)
        if (pp->nvec[q] == pp->nvec[r] && same_vec(pp->copies + q * S, pp->copies + r * S, S)) {
          int eq = 1;
          for (int k = 0; k < pp->nvec[r] * S && eq; k++) eq = pp->vec[q][k] == pp->vec[r][k];
          dup = eq;
        }
      if (dup) continue;
      for (int kk = 0; kk < (pp->nvec[r] ? pp->nvec[r] : 1); kk++) {
        row_clear(&m);
        for (int s = 0; s < S; s++) {
          double cs = pp->copies[r * S + s], vs = pp->nvec[r] ? pp->vec[r][kk * S + s] : 0;
          if (cs == 0 && vs == 0) continue;
          for (int l = 0; l < L; l++)
            add_x(&m, l, s, (cs * pp->lc->l[l].state_bytes + vs * pp->lc->l[l].act_bytes) * memscale);
        }
        if (mode == 1) m.coef[colT] = -1;
        if (row_add(P, &m, mode == 1 ? 0 : 1) < 0) {
          rc = 1; /* a rank's memory over the cap whatever the free cuts do */
          goto done;
        }
      }
    }
  }
  info->rows = glp_get_num_rows(P), info->cols = nc;
  if (have_inc) { /* the incumbent in these columns */
    for (int l = 0; l < L; l++)
      for (int s = 0; s < S - 1; s++) {
        size_t i = (size_t)l * (S - 1) + s;
        if (m.col[i]) cbd.x0[m.col[i]] = l < inc[s + 1] ? 1 : 0;
      }
    bp_part_eval ev;
    if (bp_part_evaluate(pp, inc, 0, &ev, err, errlen)) goto done;
    cbd.x0[colT] = mode == 1 ? ev.peak_mem * memscale : ev.pace * ts;
    cbd.x0[colM] = mode == 1 ? 0 : ev.max_load * ts;
    bp_part_eval_free(&ev);
    for (int i = 0; i < T_; i++) {
      int sa = stage_of(inc, S, pp->tied_a[i]), sb = stage_of(inc, S, pp->tied_b[i]);
      int j = zcol[((size_t)i * S + sa) * S + sb];
      if (j) cbd.x0[j] = 1;
    }
  }
  /* The LP relaxation first (no MIP presolve: the callback's incumbent is in the original columns) */
  glp_smcp sm;
  glp_init_smcp(&sm);
  sm.msg_lev = o && o->verbose ? GLP_MSG_ON : GLP_MSG_OFF;
  sm.presolve = GLP_ON;
  int lret = glp_simplex(P, &sm);
  if (lret == GLP_ENOPFS || (lret == 0 && glp_get_status(P) == GLP_NOFEAS)) {
    if (mode == 0 && have_inc) goto incumbent;
    rc = 1;
    goto done;
  }
  if (lret != 0 || glp_get_status(P) != GLP_OPT) {
    bp_sched_errf(err, errlen, "partition: glp_simplex failed on the LP relaxation (GLPK code %d, status %d)", lret,
                  glp_get_status(P));
    goto done;
  }
  glp_iocp parm;
  glp_init_iocp(&parm);
  parm.presolve = GLP_OFF;
  parm.msg_lev = o && o->verbose ? GLP_MSG_ON : GLP_MSG_OFF;
  double limit = o && o->time_limit_s > 0 ? o->time_limit_s : 60;
  parm.tm_lim = (int)(1000 * limit);
  parm.mip_gap = 0;
  parm.cb_func = callback;
  parm.cb_info = &cbd;
  int ret = glp_intopt(P, &parm);
  info->seconds = now_s() - t0;
  int st = glp_mip_status(P);
  if (ret == GLP_ENOPFS || ret == GLP_ENODFS || st == GLP_NOFEAS) {
    if (mode == 0 && have_inc) goto incumbent;
    rc = 1;
    goto done;
  }
  if (ret == GLP_ETMLIM || ret == GLP_EMIPGAP || ret == GLP_ESTOP) info->timed_out = ret == GLP_ETMLIM;
  else if (ret != 0) {
    bp_sched_errf(err, errlen, "partition: glp_intopt failed (GLPK code %d)", ret);
    goto done;
  }
  if (st != GLP_OPT && st != GLP_FEAS) {
    if (info->timed_out)
      bp_sched_errf(err, errlen, "partition: GLPK found no integer solution within %.0f s (%d layers, %d stages)",
                    limit, L, S);
    else bp_sched_errf(err, errlen, "partition: glp_intopt ended without a solution (status %d)", st);
    goto done;
  }
  /* read the cuts back: first[s+1] = the layers with u[l][s] = 1 */
  first[0] = 0, first[S] = L;
  for (int s = 0; s < S - 1; s++) {
    int n = 0;
    for (int l = 0; l < L; l++) {
      size_t i = (size_t)l * (S - 1) + s;
      n += m.col[i] ? glp_mip_col_val(P, m.col[i]) > 0.5 : m.val[i];
    }
    first[s + 1] = n;
  }
  for (int s = 0; s < S; s++)
    if (first[s] >= first[s + 1]) {
      bp_sched_errf(err, errlen, "partition: GLPK's solution has an empty stage %d (internal error)", s);
      goto done;
    }
  double scale = mode == 1 ? memscale : ts, peak;
  if (mode == 0) bp_part_polish(pp, first);
  info->mip_obj = glp_mip_obj_val(P) / scale;
  info->obj = bp_part_proxy(pp, first, &peak);
  if (mode == 1) info->obj = peak;
  if (ret == 0 && st == GLP_OPT) info->bound = info->mip_obj;
  else info->bound = cbd.have_bound ? cbd.bound / scale : 0;
  if (info->bound > info->obj) info->bound = info->obj;
  info->gap = info->obj > 0 ? (info->obj - info->bound) / info->obj : 0;
  rc = 0;
  goto done;
incumbent:
  /* GLPK called the LP infeasible although the incumbent meets every row: the bounds taken from the
   * incumbent are so tight that the LP's feasibility tolerance (1e-7 on scaled rows) cuts it off
   * (seen on GPT-2's fine layers, BitPipe D=4). The incumbent is a valid partition under the cap, and
   * K x the smallest bottleneck still bounds the proxy from below. */
  memcpy(first, inc, sizeof(int) * (size_t)(S + 1));
  bp_part_polish(pp, first);
  {
    double pk;
    info->obj = info->mip_obj = bp_part_proxy(pp, first, &pk);
  }
  info->bound = fmin(pp->K * wstar, info->obj);
  info->gap = info->obj > 0 ? (info->obj - info->bound) / info->obj : 0;
  info->from_incumbent = 1;
  rc = 0;
  goto done;
inconsistent:
  bp_sched_errf(err, errlen, "partition: the cut ranges contradict a structural row (internal error)");
  goto done;
oom:
  bp_sched_errf(err, errlen, "partition: out of memory");
done:
  if (!info->seconds) info->seconds = now_s() - t0;
  if (P) glp_delete_prob(P);
  free(lo), free(hi), free(inc), free(zcol), free(m.col), free(m.val), free(m.coef), free(m.v), free(m.ind);
  free(cbd.x0);
  return rc;
}

int bp_part_ilp(const bp_part_problem *pp, const bp_ilp_opts *o, int *first, bp_ilp_info *info, char *err,
                size_t errlen) {
  return solve(pp, o, 0, first, info, err, errlen);
}

int bp_part_min_memory_info(const bp_part_problem *pp, const bp_ilp_opts *o, int *first, bp_ilp_info *info,
                            char *err, size_t errlen) {
  bp_ilp_opts d = {.time_limit_s = 30, .warm_start = 1};
  return solve(pp, o ? o : &d, 1, first, info, err, errlen);
}

int bp_part_min_memory(const bp_part_problem *pp, double *bytes, int *first, char *err, size_t errlen) {
  bp_ilp_info info;
  int rc = bp_part_min_memory_info(pp, NULL, first, &info, err, errlen);
  if (rc == 0) *bytes = info.obj;
  return rc;
}
