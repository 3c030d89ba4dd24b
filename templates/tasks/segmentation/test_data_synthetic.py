

def test_the_scenes_are_deterministic_and_the_lines_are_not_in_the_masks() -> None:
    data = generate_scenes(40, 64, noise=0.0, seed=5)
    images, masks = data["images"], data["masks"]
    assert images.shape == (40, 1, 64, 64) and masks.shape == (40, 64, 64)
    assert set(masks.unique().tolist()) == {0, 1}
    assert (images[:, 0][masks == 1] >= 127).all()  # without noise, shapes are bright...
    bright_outside = ((images[:, 0] >= 127) & (masks == 0)).flatten(1).any(dim=1)
    assert bright_outside.sum() >= 20  # ...and so are the lines around most of them
    assert torch.equal(images, generate_scenes(40, 64, noise=0.0, seed=5)["images"])


def test_the_coarse_and_fine_stages_see_shrunk_images_and_crops() -> None:
    data = generate_scenes(100, 64, noise=0.5, seed=0)
    small_images, small_masks = shrink(data["images"], data["masks"], 4)
    assert small_images.shape == (100, 1, 16, 16) and small_masks.shape == (100, 16, 16)
    upsampled = small_masks.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)
    assert (upsampled >= data["masks"]).all()  # the coarse mask covers every shape pixel
    crops, crop_masks = crop_around_shapes(data["images"], data["masks"], 32, seed=0)
    assert crops.shape == (100, 1, 32, 32) and crop_masks.shape == (100, 32, 32)
    assert crop_masks.sum() >= 0.97 * data["masks"].sum()  # shifted, but around the shape
