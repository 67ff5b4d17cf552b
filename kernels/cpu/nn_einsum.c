/* kernels/cpu/nn_einsum.c — Einsum: equation parsing (shared with shape inference) and a
 * general evaluator for any number of operands, repeated labels (diagonals), ellipsis with
 * broadcasting, explicit and implicit ("no ->") outputs.
 *
 * Labels: 'a'-'z' are ids 0-25, 'A'-'Z' 26-51, and each ellipsis dimension gets its own id from
 * 52 (right-aligned across operands, like numpy broadcasting). The evaluator walks the product
 * of all label ranges, output labels outermost, summing the products of the operands. */
#include "kernels/cpu/nn.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define ELL0 52

static int label_id(char c) { return c >= 'a' && c <= 'z' ? c - 'a' : c - 'A' + 26; }

/* Parses one term into label ids; `ell` receives the ellipsis position or -1. Returns the number
 * of letters or -1 on a bad character. */
static int parse_term(const char *s, size_t len, int *labs, int *ell, int maxl) {
  int k = 0;
  *ell = -1;
  for (size_t i = 0; i < len; i++) {
    if (isalpha((unsigned char)s[i])) {
      if (k >= maxl) return -1;
      labs[k++] = label_id(s[i]);
    } else if (s[i] == '.' && i + 2 < len && s[i + 1] == '.' && s[i + 2] == '.' && *ell < 0) {
      *ell = k;
      i += 2;
    } else {
      return -1;
    }
  }
  return k;
}

int bp_einsum_parse(const bp_node *n, bp_value *const *in, int nin, bp_einsum *es, bp_err *e) {
  const char *eq0 = bp_attr_string(n, "equation", NULL);
  if (!eq0) return bp_errf(e, "node '%s' (%s): missing attribute 'equation'", n->name, n->op_type);
  char eq[512];
  size_t m = 0;
  for (const char *p = eq0; *p && m + 1 < sizeof eq; p++)
    if (!isspace((unsigned char)*p)) eq[m++] = *p;
  eq[m] = 0;
  memset(es, 0, sizeof *es);
  const char *arrow = strstr(eq, "->");
  size_t lhs_len = arrow ? (size_t)(arrow - eq) : m;
  int letters[BP_EINSUM_MAX_OPS][BP_MAX_RANK], nlet[BP_EINSUM_MAX_OPS], ellpos[BP_EINSUM_MAX_OPS];
  int ell_rank = 0, nops = 0;
  for (size_t start = 0;;) {
    size_t end = start;
    while (end < lhs_len && eq[end] != ',') end++;
    if (nops >= BP_EINSUM_MAX_OPS)
      return bp_errf(e, "node '%s' (%s): more than %d operands", n->name, n->op_type, BP_EINSUM_MAX_OPS);
    nlet[nops] = parse_term(eq + start, end - start, letters[nops], &ellpos[nops], BP_MAX_RANK);
    if (nlet[nops] < 0)
      return bp_errf(e, "node '%s' (%s): malformed equation '%s'", n->name, n->op_type, eq0);
    nops++;
    if (end >= lhs_len) break;
    start = end + 1;
  }
  if (nops != nin)
    return bp_errf(e, "node '%s' (%s): equation '%s' has %d operands but the node has %d inputs",
                   n->name, n->op_type, eq0, nops, nin);
  es->nops = nops;
  for (int k = 0; k < nops; k++) {
    const bp_value *x = in[k];
    if (!x) return bp_errf(e, "node '%s' (%s): input %d is missing", n->name, n->op_type, k);
    int ne = x->rank - nlet[k];
    if (ne < 0 || (ne > 0 && ellpos[k] < 0))
      return bp_errf(e, "node '%s' (%s): operand %d has rank %d, which does not match its subscripts in '%s'",
                     n->name, n->op_type, k, x->rank, eq0);
    if (ne > ell_rank) ell_rank = ne;
  }
  for (int l = 0; l < BP_EINSUM_MAX_LABELS; l++) es->size[l] = 1;
  unsigned char sized[BP_EINSUM_MAX_LABELS] = {0};
  int count[BP_EINSUM_MAX_LABELS] = {0};
  for (int k = 0; k < nops; k++) {
    const bp_value *x = in[k];
    int ne = x->rank - nlet[k], d = 0;
    es->rank[k] = x->rank;
    for (int i = 0; i <= nlet[k]; i++) {
      if (i == ellpos[k]) /* ellipsis dims, right-aligned */
        for (int j = 0; j < ne; j++) es->lab[k][d++] = ELL0 + ell_rank - ne + j;
      if (i < nlet[k]) es->lab[k][d++] = letters[k][i];
    }
    for (int i = 0; i < x->rank; i++) {
      int l = es->lab[k][i];
      int64_t sz = x->dims[i];
      es->used[l] = 1;
      if (l < ELL0) count[l]++;
      if (!sized[l] || es->size[l] == 1) {
        if (sized[l] && es->size[l] == 1 && sz != 1 && l < ELL0)
          return bp_errf(e, "node '%s' (%s): label '%c' has sizes 1 and %lld", n->name, n->op_type,
                         l < 26 ? 'a' + l : 'A' + l - 26, (long long)sz);
        es->size[l] = sz;
        sized[l] = 1;
      } else if (sz != es->size[l] && !(sz == 1 && l >= ELL0)) {
        char lc[4] = {'\'', (char)(l < 26 ? 'a' + l : 'A' + l - 26), '\'', 0};
        return bp_errf(e, "node '%s' (%s): subscript %s has sizes %lld and %lld", n->name, n->op_type,
                       l >= ELL0 ? "'...'" : lc, (long long)es->size[l], (long long)sz);
      }
    }
  }
  es->nlabels = ELL0 + ell_rank;
  if (arrow) {
    int ol[BP_MAX_RANK], oe, no = parse_term(arrow + 2, strlen(arrow + 2), ol, &oe, BP_MAX_RANK);
    if (no < 0 || no + (oe >= 0 ? ell_rank : 0) > BP_MAX_RANK)
      return bp_errf(e, "node '%s' (%s): malformed output subscripts in '%s'", n->name, n->op_type, eq0);
    int r = 0;
    for (int i = 0; i <= no; i++) {
      if (i == oe)
        for (int j = 0; j < ell_rank; j++) es->out_lab[r++] = ELL0 + j;
      if (i < no) {
        if (!es->used[ol[i]])
          return bp_errf(e, "node '%s' (%s): output label '%c' does not appear in the inputs", n->name,
                         n->op_type, arrow[2 + i]);
        for (int j = 0; j < r; j++)
          if (es->out_lab[j] == ol[i])
            return bp_errf(e, "node '%s' (%s): output label repeated in '%s'", n->name, n->op_type, eq0);
        es->out_lab[r++] = ol[i];
      }
    }
    es->out_rank = r;
  } else { /* implicit: ellipsis dims, then labels seen once, in ASCII order (A-Z before a-z) */
    int r = 0;
    for (int j = 0; j < ell_rank; j++) es->out_lab[r++] = ELL0 + j;
    for (int c = 'A'; c <= 'z'; c++) {
      if (!isalpha(c)) continue;
      int l = label_id((char)c);
      if (count[l] == 1) {
        if (r >= BP_MAX_RANK)
          return bp_errf(e, "node '%s' (%s): output rank exceeds %d", n->name, n->op_type, BP_MAX_RANK);
        es->out_lab[r++] = l;
      }
    }
    es->out_rank = r;
  }
  return 0;
}

int bp_nn_eval_einsum(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                      bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nout;
  bp_einsum es;
  if (bp_einsum_parse(n, in, nin, &es, e)) return -1;
  bp_value *y = out[0];
  for (int k = 0; k < nin; k++) {
    if (bp_nn_check_dtype(n, in[k]->dtype, 1, 0, "input", e)) return -1;
    if (in[k]->dtype != y->dtype)
      return bp_errf(e, "node '%s' (%s): all inputs must have the same dtype", n->name, n->op_type);
  }
  int fast = bp_einsum_gemm(n, &es, in, y, e);
  if (fast) return fast < 0 ? -1 : 0;
  /* loop order: output labels, then the summed labels */
  int order[BP_EINSUM_MAX_LABELS], nl = 0;
  unsigned char is_out[BP_EINSUM_MAX_LABELS] = {0};
  for (int i = 0; i < es.out_rank; i++) order[nl++] = es.out_lab[i], is_out[es.out_lab[i]] = 1;
  for (int l = 0; l < es.nlabels; l++)
    if (es.used[l] && !is_out[l]) order[nl++] = l;
  /* stride of each operand per loop position (repeated labels add up: diagonals) */
  int64_t st[BP_EINSUM_MAX_OPS][BP_EINSUM_MAX_LABELS];
  memset(st, 0, sizeof st);
  for (int k = 0; k < nin; k++) {
    int64_t s = 1;
    for (int d = in[k]->rank - 1; d >= 0; d--) {
      int l = es.lab[k][d];
      for (int p = 0; p < nl; p++)
        if (order[p] == l && !(in[k]->dims[d] == 1 && es.size[l] != 1)) st[k][p] += s;
      s *= in[k]->dims[d];
    }
  }
  int64_t nsum = 1, total = 1;
  for (int p = 0; p < nl; p++) {
    total *= es.size[order[p]];
    if (p >= es.out_rank) nsum *= es.size[order[p]];
  }
  int64_t nyo = bp_value_numel(y);
  if (total == 0 || nsum == 0) { /* empty sum: zeros (already), or nothing to write */
    memset(y->data, 0, bp_value_bytes(y));
    return 0;
  }
  int flt = bp_dtype_is_float(y->dtype);
  int64_t idx[BP_EINSUM_MAX_LABELS] = {0}, off[BP_EINSUM_MAX_OPS] = {0};
  for (int64_t o = 0; o < nyo; o++) {
    double accf = 0;
    uint64_t acci = 0;
    for (int64_t t = 0; t < nsum; t++) {
      if (flt) {
        double pr = 1;
        for (int k = 0; k < nin; k++) pr *= bp_get_f64(in[k]->data, in[k]->dtype, off[k]);
        accf += pr;
      } else {
        uint64_t pr = 1;
        for (int k = 0; k < nin; k++) pr *= (uint64_t)bp_get_i64(in[k]->data, in[k]->dtype, off[k]);
        acci += pr;
      }
      for (int p = nl - 1; p >= 0; p--) { /* advance the full index, innermost label first */
        for (int k = 0; k < nin; k++) off[k] += st[k][p];
        if (++idx[p] < es.size[order[p]]) break;
        for (int k = 0; k < nin; k++) off[k] -= st[k][p] * es.size[order[p]];
        idx[p] = 0;
      }
    }
    if (flt) bp_set_f64(y->data, y->dtype, o, accf);
    else bp_set_i64(y->data, y->dtype, o, (int64_t)acci);
  }
  return 0;
}
