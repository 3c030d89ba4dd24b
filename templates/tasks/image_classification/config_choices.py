BACKBONES = ("cnn", "resnet18")
{% if cookiecutter.dataset == "image_folder" %}
COLORS = ("rgb", "grey")
{% endif %}
