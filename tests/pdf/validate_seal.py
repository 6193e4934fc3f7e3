#!/usr/bin/env python3
"""Validates the signatures of a PDF with pyHanko, an implementation
independent of giaoban's verifier (tests/tests/minutes_seal.rs).

Usage: validate_seal.py FILE.pdf TRUST.pem

TRUST.pem holds the trust roots (one or more CERTIFICATE blocks). Prints one
JSON object: {"signatures": [{"intact": ..., "valid": ..., "trusted": ...,
"coverage": ..., "modification_level": ..., "signer": ..., "summary": ...}]}
and exits 0 when every signature is intact, valid, trusted and covers the
whole file; 1 otherwise; 3 when pyHanko is missing.

Needs: pip install pyhanko==0.38.0 cryptography==48.0.0 (scripts/test).
"""

import json
import sys

try:
    from pyhanko.keys import load_certs_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
except ImportError as e:  # pragma: no cover
    sys.stderr.write(
        f"validate_seal.py: missing Python package ({e}); install with:\n"
        "    pip install pyhanko==0.38.0 cryptography==48.0.0\n"
    )
    sys.exit(3)


def main() -> int:
    path, trust = sys.argv[1], sys.argv[2]
    roots = list(load_certs_from_pemder([trust]))
    vc = ValidationContext(trust_roots=roots, allow_fetching=False)
    out = []
    ok = True
    with open(path, "rb") as f:
        reader = PdfFileReader(f, strict=False)
        sigs = reader.embedded_signatures
        if not sigs:
            ok = False
        for sig in sigs:
            try:
                status = validate_pdf_signature(sig, vc)
            except Exception as e:  # a broken signature is a result here
                out.append({"error": f"{type(e).__name__}: {e}"})
                ok = False
                continue
            entry = {
                "intact": bool(status.intact),
                "valid": bool(status.valid),
                "trusted": bool(status.trusted),
                "coverage": str(status.coverage),
                "modification_level": str(status.modification_level),
                "signer": status.signing_cert.subject.human_friendly,
                "summary": status.summary(),
            }
            out.append(entry)
            whole = "ENTIRE_FILE" in entry["coverage"]
            if not (status.intact and status.valid and status.trusted and whole):
                ok = False
    print(json.dumps({"signatures": out}, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
