STAGES = ("all", "pretrain", "finetune", "scratch")
LOSSES = ("mse", "l1")
