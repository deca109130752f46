#!/usr/bin/env bash
# The photographs of Debian's wallpaper packages, as extra training photos for `lmppm train photo-crops
# --extra-photos DIR` (weights/README.md). Downloads two .deb files with apt-get and unpacks them with
# dpkg-deb, installing nothing; copies the largest version of each photograph into DIR.
# Usage: bash examples/wallpapers.sh DIR
set -euo pipefail
out=${1:?usage: wallpapers.sh DIR}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
(cd "$work" && apt-get download mate-backgrounds plasma-workspace-wallpapers >/dev/null)
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
cp "$work"/x/usr/share/backgrounds/mate/nature/*.jpg "$out"/
# plasma's photographs (the others are drawings or renders)
for name in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Honeywave OneStandsOut Path summer_1am; do
  largest=$(ls -S "$work/x/usr/share/wallpapers/$name/contents/images/"* | head -1)
  cp "$largest" "$out/plasma-$name.${largest##*.}"
done
ls "$out" | wc -l
