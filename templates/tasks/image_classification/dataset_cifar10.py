{% include "tasks/image_classification/dataset_torchvision.py" %}
