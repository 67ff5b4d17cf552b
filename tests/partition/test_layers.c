/* tests/partition/test_layers.c — cut points on all nine committed exports (GPT-2, BERT, Llama x
 * TorchScript, dynamo, training recipe): the layers found are the embedding part, one per block
 * (the models have 2) and the head + loss part, with no model-specific rule; the blocks agree in
 * parameters and FLOPs, and each boundary carries the residual stream [B, T, 64] in fp32. Tied
 * parameters: the embedding / LM head weight shared by the first and last layer is found. */
#include "partitioner/layer_costs.h"
#include "tests/schedule/check.h"

#include <stdio.h>
#include <string.h>

int main(void) {
  const char *fam[] = {"gpt2", "bert", "llama"}, *var[] = {"ts", "dynamo", "train"};
  bp_binding binds[2] = {{"batch", 2}, {"sequence", 16}};
  for (int f = 0; f < 3; f++)
    for (int v = 0; v < 3; v++) {
      char path[512];
      snprintf(path, sizeof path, "%s/%s/%s.onnx", BP_MODELS_DIR, fam[f], var[v]);
      bp_model_layers m;
      bp_err e = {0};
      int rc = bp_model_layers_build(path, binds, 2, BP_LAYERS_BLOCK, &m, &e);
      CHECK(rc == 0, "%s: %s", path, e.msg);
      if (rc) continue;
      printf("%s/%s: %d layers (%d positions, %d segments, period %d x %d, cut at <= %.0f bytes)\n", fam[f], var[v],
             m.n, m.n_positions, m.n_segments, m.period, m.reps, m.threshold);
      for (int i = 0; i < m.n; i++)
        printf("  %-8s nodes %3d  fwd %9.0f FLOP  params %7.0f B  stash %7.0f B  out %6.0f B (%d tensors)\n",
               m.layer[i].name, m.layer[i].nnodes, m.layer[i].flops_fwd, m.layer[i].param_bytes, m.layer[i].act_bytes,
               m.layer[i].out_bytes, m.layer[i].out_tensors);
      CHECK(m.n == 4, "%s/%s: %d layers, want embed + 2 blocks + head", fam[f], var[v], m.n);
      if (m.n == 4) {
        CHECK(m.layer[0].kind == BP_LAYER_PREFIX && m.layer[1].kind == BP_LAYER_BLOCK &&
                  m.layer[2].kind == BP_LAYER_BLOCK && m.layer[3].kind == BP_LAYER_SUFFIX,
              "%s/%s: layer kinds", fam[f], var[v]);
        CHECK(m.layer[1].nnodes == m.layer[2].nnodes, "%s/%s: blocks differ in nodes", fam[f], var[v]);
        CHECK(m.layer[1].flops_fwd == m.layer[2].flops_fwd, "%s/%s: blocks differ in FLOPs", fam[f], var[v]);
        CHECK(m.layer[1].param_bytes == m.layer[2].param_bytes && m.layer[1].param_bytes > 0,
              "%s/%s: blocks differ in parameters", fam[f], var[v]);
        for (int i = 0; i < 3; i++)
          CHECK(m.layer[i].out_bytes >= 2 * 16 * 64 * 4, "%s/%s: boundary %d carries %.0f bytes", fam[f], var[v], i,
                m.layer[i].out_bytes);
        CHECK(m.layer[1].out_bytes == 2 * 16 * 64 * 4 && m.layer[1].out_tensors == 1,
              "%s/%s: the block boundary should be the residual stream alone", fam[f], var[v]);
        CHECK(m.layer[3].param_bytes >= 256 * 64 * 4, "%s/%s: the head holds the LM head", fam[f], var[v]);
      }
      /* fine granularity: blocks split at their inner narrow points */
      bp_model_layers fine;
      rc = bp_model_layers_build(path, binds, 2, BP_LAYERS_FINE, &fine, &e);
      CHECK(rc == 0 && fine.n > m.n, "%s/%s: fine layers %d", fam[f], var[v], rc ? -1 : fine.n);
      if (rc == 0) {
        printf("  fine: %d layers\n", fine.n);
        bp_model_layers_free(&fine);
      }
      bp_model_layers_free(&m);
    }
  /* tied parameters: the training-recipe exports keep the tied embedding / LM head as one
   * initializer read by the embedding layer and the head (GPT-2's wte, BERT's word embeddings);
   * Llama's head is its own weight */
  const char *tf[] = {"gpt2", "bert", "llama"}, *tname[] = {"model.transformer.wte.weight",
                                                             "model.bert.embeddings.word_embeddings.weight", NULL};
  for (int f = 0; f < 3; f++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s/train.onnx", BP_MODELS_DIR, tf[f]);
    bp_model_layers m;
    bp_err e = {0};
    if (bp_model_layers_build(path, binds, 2, BP_LAYERS_BLOCK, &m, &e)) {
      CHECK(0, "%s: %s", path, e.msg);
      continue;
    }
    bp_lcosts c;
    int rc = bp_lcosts_analytic(&m, bp_device_model_find("h100"), &c, &e);
    CHECK(rc == 0, "%s: %s", path, e.msg);
    if (rc == 0) {
      printf("%s/train: %d tied parameter(s)\n", tf[f], c.n_tied);
      for (int k = 0; k < c.n_tied; k++)
        printf("  %s: layers %d and %d, %.0f bytes\n", c.tied[k].name, c.tied[k].a, c.tied[k].b, c.tied[k].bytes);
      if (tname[f]) {
        CHECK(c.n_tied == 1 && !strcmp(c.tied[0].name, tname[f]) && c.tied[0].a == 0 && c.tied[0].b == m.n - 1 &&
                  c.tied[0].bytes == 256 * 64 * 4,
              "%s: want one tied parameter %s between the embedding and the head (256 x 64 fp32)", tf[f], tname[f]);
      } else {
        CHECK(c.n_tied == 0, "%s: no tied parameter expected, found %d", tf[f], c.n_tied);
      }
      bp_lcosts_free(&c);
    }
    bp_model_layers_free(&m);
  }
  return check_done();
}
