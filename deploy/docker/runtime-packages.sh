#!/usr/bin/env bash
# Prints the Debian packages that hold the shared libraries BINARY links directly, one per line.
#
# The image's runtime stage installs exactly these (apt pulls their own dependencies), so a new
# library linked by the build — e.g. prometheus-cpp — reaches the image without anyone editing a
# hand-kept list. Runs in the Dockerfile's build stage (where the -dev packages that
# scripts/install-deps.sh installed own the libraries) and in tests/deploy_check.sh against the
# locally built binary, where the same Debian 12 packages are installed.
#
# Exit 1 if a library is not found or belongs to no package: the image would not start.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 BINARY" >&2
  exit 2
fi
binary=$1

# dpkg records each file under the path its package shipped (/lib/... or /usr/lib/...); on a
# merged-/usr system the loader reports either one, so ask for both spellings.
package_owning() {
  local path=$1 candidate owner
  for candidate in "$path" "/usr${path}" "${path#/usr}"; do
    owner=$(dpkg-query -S "$candidate" 2>/dev/null | head -n1 | cut -d: -f1) || true
    if [ -n "$owner" ]; then
      echo "$owner"
      return 0
    fi
  done
  return 1
}

needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
resolved=$(ldd "$binary")
status=0
packages=()
for soname in $needed; do
  path=$(awk -v so="$soname" '$1 == so && $2 == "=>" { print $3 }' <<<"$resolved")
  if [ -z "$path" ] || [ "$path" = "not" ]; then
    echo "runtime-packages: $soname is not found by the loader" >&2
    status=1
    continue
  fi
  # Follow the soname symlink to the file the package installed; also try the link itself,
  # which is what alternatives-managed libraries (BLAS) are registered under.
  if owner=$(package_owning "$(readlink -f "$path")") || owner=$(package_owning "$path"); then
    packages+=("$owner")
  else
    echo "runtime-packages: no Debian package owns $path ($soname)" >&2
    status=1
  fi
done

if [ ${#packages[@]} -gt 0 ]; then
  printf '%s\n' "${packages[@]}" | sort -u
fi
exit $status
