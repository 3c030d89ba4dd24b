BACKBONES = ("cnn", "resnet18")
