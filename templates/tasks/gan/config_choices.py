{% if cookiecutter.dataset == "image_folder" %}
COLORS = ("rgb", "grey")
{% endif %}
