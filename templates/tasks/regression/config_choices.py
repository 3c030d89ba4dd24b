MODELS = ("linear", "mlp")
LOSSES = ("mse", "l1", "huber")
