/* tools/bitpipec.c — the bitpipe compiler driver: dispatches to one subcommand per file. */
#include "tools/commands.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BITPIPE_VERSION "0.1.0"

static void usage(FILE *f) {
  fprintf(f,
          "bitpipe %s — a training compiler for ONNX transformers with pipeline parallelism (BitPipe)\n"
          "\n"
          "usage: bitpipec MODEL -o TRAIN [-D 4] [-N 8] [--schedule bitpipe] [options]\n"
          "       bitpipec COMMAND [options]\n"
          "\n"
          "The first form compiles MODEL (ONNX) into a pipeline-parallel training program TRAIN\n"
          "(mpirun -np D ./TRAIN ...); 'bitpipec MODEL --help' lists its options.\n"
          "\n"
          "commands:\n"
          "  inspect MODEL [--bind N=V]...         opsets, inputs/outputs, op histogram before/after folding,\n"
          "                                        parameters, forward FLOPs\n"
          "  run MODEL --input NAME=FILE [...]     run the forward pass on the CPU, write outputs as .npy\n"
          "  train MODEL --input NAME=FILE --targets FILE --steps K\n"
          "                                        train on the CPU (autodiff, loss, SGD/AdamW); loss per step\n"
          "  schedule --schedule NAME -D 4 -N 8    generate, validate and simulate a pipeline schedule\n"
          "  partition MODEL -D 8 -N 32 --schedule bitpipe\n"
          "                                        cut into layers, cost them, place them on the chunks (GLPK)\n"
          "  tokenize FILE... -o tokens.bin        bytes of text files as a token file for ./train --data\n"
          "\n"
          "'bitpipec COMMAND --help' describes a command's options. 'bitpipec --version' prints the version.\n",
          BITPIPE_VERSION);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("bitpipec %s\n", BITPIPE_VERSION);
    return 0;
  }
  if (strcmp(cmd, "inspect") == 0) return bp_cmd_inspect(argc - 1, argv + 1);
  if (strcmp(cmd, "run") == 0) return bp_cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "train") == 0) return bp_cmd_train(argc - 1, argv + 1);
  if (strcmp(cmd, "schedule") == 0) return bp_cmd_schedule(argc - 1, argv + 1);
  if (strcmp(cmd, "partition") == 0) return bp_cmd_partition(argc - 1, argv + 1);
  if (strcmp(cmd, "tokenize") == 0) return bp_cmd_tokenize(argc - 1, argv + 1);
  /* not a command: a model file to compile */
  if (cmd[0] != '-' && (strchr(cmd, '/') || strchr(cmd, '.') || access(cmd, F_OK) == 0)) return bp_cmd_compile(argc - 1, argv + 1);
  fprintf(stderr, "bitpipec: unknown command '%s' (try 'bitpipec --help')\n", cmd);
  return 2;
}
