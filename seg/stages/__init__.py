"""The pipeline's stages as library functions: `preprocess.run`, `train.run`, `infer.run`, `analyze.run` take
their inputs and outputs as arguments and return a typed summary. Each module also holds its command: the
arguments it takes (`add_arguments`), what it prints (`main`) and `command(argv)`, which `pipelines/<stage>.py`
(the DVC stage) and `seg <stage>` both call. Heavy libraries are imported inside the functions."""
