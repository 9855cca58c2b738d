#!/usr/bin/env bash
# Makes docs/report-form/form.png, the README's picture of the printed report form: a demo
# server's day exported as XLSX, printed to PDF by LibreOffice (Debian's
# libreoffice-calc-nogui, poppler-utils and fonts-noto-cjk), its first page as PNG.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill "$demo" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q -p daybook
target/debug/daybook demo --scale 0.05 --data-dir "$work/data" \
    --grpc-addr 127.0.0.1:50151 --http-addr 127.0.0.1:59465 >"$work/demo.log" 2>&1 &
demo=$!
for _ in $(seq 600); do
    grep -q "Every accepted event is folded" "$work/demo.log" && break
    sleep 0.5
done
target/debug/daybook export --target http://127.0.0.1:50151 --unit province --level school \
    --format xlsx --out "$work/schools.xlsx"
soffice --headless --convert-to pdf --outdir "$work" "$work/schools.xlsx" >/dev/null
# The top of the first page, where the form is.
pdftoppm -png -r 150 -f 1 -l 1 -x 0 -y 0 -W 1754 -H 420 -singlefile "$work/schools.pdf" docs/report-form/form
echo "docs/report-form/form.png"
