"""The warm-up compiles every numba loop that encoding and decoding use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A fresh interpreter, so loops compiled by other tests do not count.
_SCRIPT = textwrap.dedent(
    """
    from codec import blocks, kernels, payload_writer, quantization, selection
    from codec.warmup import warm_up

    seconds = warm_up()
    # Loops called from Python; the loops they call compile with them.
    loops = [
        kernels.read_table_fields, kernels.decode_canonical, kernels.ungroup, kernels.gaps_to_indices,
        payload_writer.encode_payload,
        selection._block_energy, selection._indices_above, selection.expand_ragged_units, quantization._quantize_units,
        quantization._dequantize_blocks, blocks.mark_coded_elements,
    ]
    missing = [loop.py_func.__name__ for loop in loops if not loop.signatures]
    print(seconds >= 0, missing)
    """
)


def test_warm_up_compiles_codec_loops():
    result = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "[]"]
