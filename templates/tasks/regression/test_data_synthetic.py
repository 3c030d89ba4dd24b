def test_the_data_follows_y_equals_3x_plus_2_plus_noise() -> None:
    data = generate_linear(20000, 1, noise=2.0, seed=0)
    x, y = data["inputs"], data["targets"]
    assert x.shape == (20000, 1) and y.shape == (20000, 1)
    design = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, y).solution.flatten().tolist()
    assert slope == pytest.approx(3, abs=0.05) and intercept == pytest.approx(2, abs=0.05)
    residual = y - (3 * x + 2)
    assert residual.std().item() == pytest.approx(2, abs=0.05)
    assert torch.equal(x, generate_linear(20000, 1, noise=2.0, seed=0)["inputs"])


def test_the_multi_feature_variant_has_known_weights() -> None:
    assert true_weights(1).tolist() == [3.0]
    assert true_weights(3).tolist() == pytest.approx([3.0, -2.0, 4 / 3])
    data = generate_linear(50, 3, noise=0.0, seed=1)
    assert torch.allclose(data["targets"].flatten(), data["inputs"] @ true_weights(3) + INTERCEPT)


def test_describe_prints_the_learned_line_beside_the_truth() -> None:
    model = LinearRegression(1)
    with torch.no_grad():
        model.linear.weight.fill_(2.5)
        model.linear.bias.fill_(-1.0)
    text = describe(model, Config())
    assert "learned  y = 2.500 x - 1.000" in text and "truth    y = 3.000 x + 2.000" in text


def test_a_short_run_approaches_the_true_line(workdir, capsys) -> None:
    assert main(["num_samples=2000", "epochs=6", "lr=0.1", "run_name=r"]) == 0
    learned = capsys.readouterr().out.split("learned  y = ")[1].split()
    assert float(learned[0]) == pytest.approx(3, abs=0.3)
