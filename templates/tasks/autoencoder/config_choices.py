STAGES = ("all", "pretrain", "finetune", "scratch")
LOSSES = ("mse", "l1")
NORMS = ("batch", "group", "none")
{% if cookiecutter.dataset == "image_folder" %}
COLORS = ("rgb", "grey")
{% endif %}
