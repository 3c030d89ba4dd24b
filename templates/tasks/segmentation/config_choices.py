STAGES = ("full", "coarse_to_fine", "coarse", "fine")
NORMS = ("batch", "group", "none")
LOSSES = ("dice_ce", "dice_focal")
{% if cookiecutter.dataset == "image_folder" %}
COLORS = ("rgb", "grey")
{% endif %}
