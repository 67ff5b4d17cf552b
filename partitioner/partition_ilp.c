/* partitioner/partition_ilp.c — the partition as a GLPK mixed-integer program (glp_intopt).
 *
 * Variables: u[l][s] in {0,1} for layers l and stages s < S-1, u = 1 iff layer l lies in stage <= s
 * (u[l][S-1] = 1); T, M >= 0 continuous (step bound, largest load). x[l][s] = u[l][s] - u[l][s-1] says layer l is in stage s.
 *   u[l][s] <= u[l][s+1]                   (a layer is in one stage)
 *   u[l+1][s] <= u[l][s]                   (stages are contiguous and in order)
 *   sum_s u[l][s] - sum_s u[l+1][s] <= 1   (consecutive layers are at most one stage apart)
 *   u[0][0] = 1, u[L-1][S-2] = 0           (first and last stage; with the above, none is empty)
 *   M >= sum_s mult[r][s] sum_l work[l] x[l][s]                         for each rank r
 *   T >= M,  T >= K sum_l work[l] x[l][s]                                for each stage s
 *   sum_s copies[r][s] state(s) + sum_s count_k[s] act(s) <= cap         for each rank r, stash state k
 * Objective: T + BP_PART_TIE M + sum_l comm[l] * (stage(l+1) - stage(l)), the proxy of partition.h.
 * Times are scaled so the total work is 1000 and bytes by the cap, to keep GLPK's tolerances
 * meaningful. The minimum-memory variant minimises M >= memory of every rank instead. */
#include "partitioner/partition.h"

#include <glpk.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int L, S;
  double *x0;      /* heuristic incumbent, 1-based over columns, or NULL */
  double bound;
  int have_bound;
} cb_data;

static void callback(glp_tree *tree, void *info) {
  cb_data *d = info;
  int node = glp_ios_best_node(tree);
  if (node) d->bound = glp_ios_node_bound(tree, node), d->have_bound = 1;
  if (glp_ios_reason(tree) == GLP_IHEUR && d->x0 && glp_ios_curr_node(tree) == 1) {
    glp_ios_heur_sol(tree, d->x0); /* GLPK checks it; an infeasible one is ignored */
  }
}

static int col_u(int S, int l, int s) { return 1 + l * (S - 1) + s; }

/* coef (1-based over columns) += a * x[l][s]; the constant part to *k */
static void add_x(double *coef, int S, int l, int s, double a, double *k) {
  if (s <= S - 2) coef[col_u(S, l, s)] += a;
  else *k += a;
  if (s >= 1) coef[col_u(S, l, s - 1)] -= a;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A sparse row from a dense coefficient array. */
static void set_row(glp_prob *P, int row, const double *coef, int ncols, int *ind, double *val) {
  int n = 0;
  for (int j = 1; j <= ncols; j++)
    if (coef[j] != 0) ind[++n] = j, val[n] = coef[j];
  glp_set_mat_row(P, row, n, ind, val);
}

/* mode 0: minimise the proxy under the cap; 1: minimise the peak memory. */
static int solve(const bp_part_problem *pp, const bp_ilp_opts *o, int mode, int *first, bp_ilp_info *info,
                 char *err, size_t errlen) {
  int L = pp->L, S = pp->S, D = pp->D, rc = -1;
  memset(info, 0, sizeof *info);
  if (S == 1) { /* nothing to choose */
    first[0] = 0, first[1] = L;
    double peak;
    info->obj = info->mip_obj = info->bound = bp_part_proxy(pp, first, &peak);
    if (mode == 1) info->obj = info->mip_obj = info->bound = peak;
    if (mode == 0 && pp->mem_cap > 0 && peak > pp->mem_cap) return 1;
    return 0;
  }
  int nu = L * (S - 1), ncols = nu + 2, colT = nu + 1, colP = nu + 2;
  double total = 0, memscale = 1;
  for (int l = 0; l < L; l++) total += pp->work[l] * pp->N;
  double ts = total > 0 ? 1000.0 / total : 1;
  if (mode == 0 && pp->mem_cap > 0) memscale = 1.0 / pp->mem_cap;
  if (mode == 1) {
    double m = 0;
    for (int l = 0; l < L; l++) m += pp->lc->l[l].state_bytes + pp->lc->l[l].act_bytes * pp->N;
    memscale = m > 0 ? 1000.0 / m : 1;
  }
  glp_prob *P = glp_create_prob();
  double *coef = calloc((size_t)ncols + 1, sizeof(double)), *val = calloc((size_t)ncols + 1, sizeof(double));
  int *ind = calloc((size_t)ncols + 1, sizeof(int));
  cb_data cbd = {.L = L, .S = S};
  cbd.x0 = calloc((size_t)ncols + 1, sizeof(double));
  int *heur = calloc((size_t)S + 1, sizeof(int));
  if (!P || !coef || !val || !ind || !cbd.x0 || !heur) {
    bp_sched_errf(err, errlen, "partition: out of memory");
    goto done;
  }
  glp_set_prob_name(P, "bitpipe-partition");
  glp_set_obj_dir(P, GLP_MIN);
  glp_add_cols(P, ncols);
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S - 1; s++) glp_set_col_kind(P, col_u(S, l, s), GLP_BV);
  /* stage(l) lies in [max(0, S-L+l), min(l, S-1)]: fix the u outside it */
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S - 1; s++) {
      if (s >= l) glp_set_col_bnds(P, col_u(S, l, s), GLP_FX, 1, 1);
      else if (s < S - L + l) glp_set_col_bnds(P, col_u(S, l, s), GLP_FX, 0, 0);
    }
  glp_set_col_kind(P, colT, GLP_CV);
  glp_set_col_bnds(P, colT, GLP_LO, 0, 0);
  glp_set_obj_coef(P, colT, 1);
  glp_set_col_kind(P, colP, GLP_CV); /* M, the largest load */
  glp_set_col_bnds(P, colP, GLP_LO, 0, 0);
  glp_set_obj_coef(P, colP, mode == 0 ? BP_PART_TIE : 0);
  if (mode == 0) /* communication: comm[l] * (sum_s u[l][s] - sum_s u[l+1][s]) */
    for (int l = 0; l + 1 < L; l++)
      for (int s = 0; s < S - 1; s++) {
        glp_set_obj_coef(P, col_u(S, l, s), glp_get_obj_coef(P, col_u(S, l, s)) + pp->comm[l] * ts);
        glp_set_obj_coef(P, col_u(S, l + 1, s), glp_get_obj_coef(P, col_u(S, l + 1, s)) - pp->comm[l] * ts);
      }
  int row = 0;
#define ROW2(j1, a1, j2, a2, type, lo, up)                                                             \
  do {                                                                                                 \
    row = glp_add_rows(P, 1);                                                                          \
    ind[1] = (j1), val[1] = (a1), ind[2] = (j2), val[2] = (a2);                                         \
    glp_set_mat_row(P, row, 2, ind, val);                                                              \
    glp_set_row_bnds(P, row, type, lo, up);                                                            \
  } while (0)
  for (int l = 0; l < L; l++)
    for (int s = 0; s + 1 < S - 1; s++) ROW2(col_u(S, l, s), 1, col_u(S, l, s + 1), -1, GLP_UP, 0, 0);
  for (int l = 0; l + 1 < L; l++)
    for (int s = 0; s < S - 1; s++) ROW2(col_u(S, l + 1, s), 1, col_u(S, l, s), -1, GLP_UP, 0, 0);
#undef ROW2
  for (int l = 0; l + 1 < L; l++) {
    memset(coef, 0, sizeof(double) * (ncols + 1));
    for (int s = 0; s < S - 1; s++) coef[col_u(S, l, s)] += 1, coef[col_u(S, l + 1, s)] -= 1;
    row = glp_add_rows(P, 1);
    set_row(P, row, coef, ncols, ind, val);
    glp_set_row_bnds(P, row, GLP_UP, 0, 1);
  }
  if (mode == 0)
    for (int r = 0; r < D; r++) { /* M >= load_r */
      double k = 0;
      memset(coef, 0, sizeof(double) * (ncols + 1));
      for (int s = 0; s < S; s++)
        if (pp->mult[r * S + s] != 0)
          for (int l = 0; l < L; l++) add_x(coef, S, l, s, pp->mult[r * S + s] * pp->work[l] * ts, &k);
      coef[colP] = -1;
      row = glp_add_rows(P, 1);
      set_row(P, row, coef, ncols, ind, val);
      glp_set_row_bnds(P, row, GLP_UP, 0, -k);
    }
  if (mode == 0) { /* T >= M */
    row = glp_add_rows(P, 1);
    ind[1] = colP, val[1] = 1, ind[2] = colT, val[2] = -1;
    glp_set_mat_row(P, row, 2, ind, val);
    glp_set_row_bnds(P, row, GLP_UP, 0, 0);
  }
  if (mode == 0)
    for (int s = 0; s < S; s++) { /* T >= pace of stage s */
      double k = 0;
      memset(coef, 0, sizeof(double) * (ncols + 1));
      for (int l = 0; l < L; l++) add_x(coef, S, l, s, pp->K * pp->work[l] * ts, &k);
      coef[colT] = -1;
      row = glp_add_rows(P, 1);
      set_row(P, row, coef, ncols, ind, val);
      glp_set_row_bnds(P, row, GLP_UP, 0, -k);
    }
  if (mode == 1 || pp->mem_cap > 0)
    for (int r = 0; r < D; r++)
      for (int kk = 0; kk < (pp->nvec[r] ? pp->nvec[r] : 1); kk++) {
        double k = 0;
        memset(coef, 0, sizeof(double) * (ncols + 1));
        for (int s = 0; s < S; s++) {
          double cs = pp->copies[r * S + s], vs = pp->nvec[r] ? pp->vec[r][kk * S + s] : 0;
          if (cs == 0 && vs == 0) continue;
          for (int l = 0; l < L; l++)
            add_x(coef, S, l, s, (cs * pp->lc->l[l].state_bytes + vs * pp->lc->l[l].act_bytes) * memscale, &k);
        }
        if (mode == 1) coef[colT] = -1;
        row = glp_add_rows(P, 1);
        set_row(P, row, coef, ncols, ind, val);
        glp_set_row_bnds(P, row, GLP_UP, 0, (mode == 1 ? 0 : 1) - k);
      }
  info->rows = glp_get_num_rows(P), info->cols = ncols;
  /* a heuristic incumbent: the better of uniform and prefix-balanced, when it meets the cap */
  if (!o || o->warm_start) {
    int cand[2][S + 1];
    bp_part_uniform(L, S, cand[0]);
    double pre = 0, tot = 0;
    for (int l = 0; l < L; l++) tot += pp->work[l];
    cand[1][0] = 0, cand[1][S] = L;
    int s = 1;
    for (int l = 0; l < L && s < S; l++) {
      pre += pp->work[l];
      if (pre >= tot * s / S || L - (l + 1) <= S - s) cand[1][s++] = l + 1;
    }
    for (; s < S; s++) cand[1][s] = cand[1][s - 1] + 1; /* cannot happen; keeps it well formed */
    int pick = -1;
    double bestv = INFINITY;
    for (int c = 0; c < 2; c++) {
      int okc = 1;
      for (int t = 0; t < S && okc; t++) okc = cand[c][t] < cand[c][t + 1];
      if (!okc) continue;
      double peak, v = bp_part_proxy(pp, cand[c], &peak);
      if (mode == 1) v = peak;
      if ((mode == 1 || pp->mem_cap <= 0 || peak <= pp->mem_cap) && v < bestv) bestv = v, pick = c;
    }
    if (pick >= 0) {
      memcpy(heur, cand[pick], sizeof(int) * (S + 1));
      for (int l = 0; l < L; l++) {
        int st = 0;
        while (heur[st + 1] <= l) st++;
        for (int t = 0; t < S - 1; t++) cbd.x0[col_u(S, l, t)] = st <= t ? 1 : 0;
      }
      bp_part_eval ev;
      if (bp_part_evaluate(pp, heur, 0, &ev, NULL, 0) == 0) {
        cbd.x0[colT] = mode == 1 ? ev.peak_mem * memscale : fmax(ev.max_load, ev.pace) * ts;
        cbd.x0[colP] = mode == 1 ? 0 : ev.max_load * ts;
        bp_part_eval_free(&ev);
      } else {
        free(cbd.x0);
        cbd.x0 = NULL;
      }
    } else {
      free(cbd.x0);
      cbd.x0 = NULL;
    }
  } else {
    free(cbd.x0);
    cbd.x0 = NULL;
  }
  /* The LP relaxation first (no MIP presolve: the callback's incumbent is in the original columns) */
  double t0 = now_s();
  glp_smcp sm;
  glp_init_smcp(&sm);
  sm.msg_lev = o && o->verbose ? GLP_MSG_ON : GLP_MSG_OFF;
  sm.presolve = GLP_ON;
  int lret = glp_simplex(P, &sm);
  if (lret == GLP_ENOPFS || (lret == 0 && glp_get_status(P) == GLP_NOFEAS)) {
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
  parm.tm_lim = (int)(1000 * (o && o->time_limit_s > 0 ? o->time_limit_s : 60));
  parm.mip_gap = 0;
  parm.cb_func = callback;
  parm.cb_info = &cbd;
  int ret = glp_intopt(P, &parm);
  info->seconds = now_s() - t0;
  int st = glp_mip_status(P);
  if (ret == GLP_ENOPFS || ret == GLP_ENODFS || st == GLP_NOFEAS) {
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
                    parm.tm_lim / 1000.0, L, S);
    else bp_sched_errf(err, errlen, "partition: glp_intopt ended without a solution (status %d)", st);
    goto done;
  }
  /* read the stages back from u */
  first[0] = 0, first[S] = L;
  for (int s = 0; s < S - 1; s++) {
    int n = 0;
    for (int l = 0; l < L; l++) n += glp_mip_col_val(P, col_u(S, l, s)) > 0.5;
    first[s + 1] = n;
  }
  for (int s = 0; s < S; s++)
    if (first[s] >= first[s + 1]) {
      bp_sched_errf(err, errlen, "partition: GLPK's solution has an empty stage %d (internal error)", s);
      goto done;
    }
  double scale = mode == 1 ? memscale : ts, peak;
  info->mip_obj = glp_mip_obj_val(P) / scale;
  info->obj = bp_part_proxy(pp, first, &peak);
  if (mode == 1) info->obj = peak;
  if (ret == 0 && st == GLP_OPT) info->bound = info->mip_obj;
  else info->bound = cbd.have_bound ? cbd.bound / scale : 0;
  if (info->bound > info->obj) info->bound = info->obj;
  info->gap = info->obj > 0 ? (info->obj - info->bound) / info->obj : 0;
  rc = 0;
done:
  if (P) glp_delete_prob(P);
  free(coef), free(val), free(ind), free(cbd.x0), free(heur);
  return rc;
}

int bp_part_ilp(const bp_part_problem *pp, const bp_ilp_opts *o, int *first, bp_ilp_info *info, char *err,
                size_t errlen) {
  return solve(pp, o, 0, first, info, err, errlen);
}

int bp_part_min_memory(const bp_part_problem *pp, double *bytes, int *first, char *err, size_t errlen) {
  bp_ilp_info info;
  bp_ilp_opts o = {.time_limit_s = 30, .warm_start = 1};
  int rc = solve(pp, &o, 1, first, &info, err, errlen);
  if (rc == 0) *bytes = info.obj;
  return rc;
}
