import numpy as np
import pytest

from tinymtl import Classify, MultiTaskNet, Regress, parallel


def test_threads_follow_the_usual_variables(monkeypatch):
    for variable in parallel.THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert parallel.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.default_threads() == 1


def test_blas_threads_are_restored_after_training():
    functions = parallel._openblas_thread_functions()
    if functions is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose threads we can set")
    set_threads, get_threads = functions
    before = get_threads()
    seen = []
    net = MultiTaskNet(2, (3,), {"t": Regress(1)})
    net.fit(np.zeros((8, 2)), {"t": np.zeros(8)}, epochs=1, threads=1,
            callback=lambda epoch, history: seen.append(get_threads()))
    assert seen == [1] and get_threads() == before


def test_training_on_two_threads_matches_one_thread():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 40))
    targets = {"y": rng.integers(0, 3, 256), "t": rng.standard_normal((256, 2))}
    nets = []
    for threads in (1, 2):
        net = MultiTaskNet(40, (64, 64), {"y": Classify(3), "t": Regress(2)}, seed=0, dtype=np.float64)
        net.fit(X, targets, epochs=3, batch_size=64, lr=0.05, momentum=0.9, threads=threads)
        nets.append(net.flat_params)
    np.testing.assert_allclose(nets[0], nets[1], rtol=1e-10, atol=1e-12)


def test_threads_must_be_positive():
    net = MultiTaskNet(2, (3,), {"t": Regress(1)})
    with pytest.raises(ValueError, match="threads"):
        net.fit(np.zeros((4, 2)), {"t": np.zeros(4)}, epochs=1, threads=0)
