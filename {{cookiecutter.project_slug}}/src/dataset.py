{% include "tasks/" ~ cookiecutter.task ~ "/dataset_" ~ cookiecutter.dataset ~ ".py" %}
