LOSSES = ("cross_entropy", "focal")
