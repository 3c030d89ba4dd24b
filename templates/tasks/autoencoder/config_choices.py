STAGES = ("all", "pretrain", "finetune", "scratch")
LOSSES = ("mse", "l1")
{% if cookiecutter.dataset == "image_folder" %}
COLORS = ("rgb", "grey")
{% endif %}
