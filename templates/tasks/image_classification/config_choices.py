BACKBONES = ("cnn", "resnet18")
NORMS = ("batch", "group", "none")
LOSSES = ("cross_entropy", "focal")
MIXES = ("none", "mixup", "cutmix")
{% if cookiecutter.dataset == "image_folder" %}
COLORS = ("rgb", "grey")
{% endif %}
