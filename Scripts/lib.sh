# Shared by Scripts/*: installing what heapsnap needs, and building it.

# Debian packages the build and the tests need, as "command-or-file:package"
# (a file may be a glob: Debian puts some headers and libraries in multiarch dirs).
HEAPSNAP_NEEDS=(
  "/usr/include/*/libunwind.h:libunwind-dev"
  "/usr/include/zlib.h:zlib1g-dev"
  "cc:gcc"
  "c++:g++"
  "readelf:binutils"
  "/usr/bin/python3:python3"
  # Python tests: Debian's internal headers, to check the shim's struct offsets (pyenv's come with pyenv).
  "/usr/include/python3.11/internal/pycore_frame.h:python3.11-dev"
  "sqlite3:sqlite3"
  "git:git"
  "/usr/lib/*/libjemalloc.so.2:libjemalloc2"
  "/usr/lib/*/libtcmalloc.so.4:libgoogle-perftools4"
  "go:golang-go"
  # The analysis side's tests: symbolizer fallback (when the Swift toolchain has
  # none) and glibc's separate debug info.
  "llvm-symbolizer:llvm"
  "/usr/lib/debug/.build-id:libc6-dbg"
  "node:nodejs"
  # ShimTests' robustness suites (Tests/ShimTests/RobustnessTests.swift): a real
  # server under load, and prlimit/setpriv for file-size limits and setuid runs.
  "redis-server:redis-server"
  "redis-benchmark:redis-tools"
  "setpriv:util-linux"
  # The web view's browser test (Tests/HeapSnapServeTests/BrowserTests.swift): headless Chromium.
  "chromium:chromium"
)

# Scripts/bench only: the instruction counts and the comparison.
HEAPSNAP_BENCH_NEEDS=(
  "valgrind:valgrind"
  "heaptrack:heaptrack"
  "objcopy:binutils"
  # --pyperformance: its virtual environment (Debian's python3 without it has no ensurepip).
  "/usr/lib/python3.11/ensurepip/__init__.py:python3-venv"
)

# Installs each needed package whose marker file is missing (root only; else says what to install).
# Arguments: more "marker:package" needs on top of HEAPSNAP_NEEDS.
ensure_packages() {
  local missing=() need
  for need in "${HEAPSNAP_NEEDS[@]}" "$@"; do
    compgen -G "${need%%:*}" >/dev/null || command -v "${need%%:*}" >/dev/null 2>&1 || missing+=("${need##*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "heapsnap: please install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    return 1
  fi
  echo "heapsnap: installing ${missing[*]}" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Builds the release products (the CLI and the preload library, and nothing only the tests need);
# prints nothing on success. Sets HEAPSNAP_BIN (the directory of heapsnap) and HEAPSNAP_LIB.
build_all() {
  local product
  for product in heapsnap heapsnap_preload; do
    swift build -c release --product "$product" >/dev/null || swift build -c release --product "$product"
  done
  HEAPSNAP_BIN="$(swift build -c release --show-bin-path)"
  export HEAPSNAP_BIN
  export HEAPSNAP_LIB="$HEAPSNAP_BIN/libheapsnap_preload.so"
}

# What the tests run: the preload library in release, as users preload it (C only: seconds), and the
# CLI in debug, from the one debug build `swift test` makes of everything with the tests (a release
# build of the Swift side and its dependencies would cost more than that whole debug build). Sets
# HEAPSNAP_LIB and HEAPSNAP_BIN; the debug build itself is left to `swift test`.
build_for_tests() {
  swift build -c release --product heapsnap_preload >/dev/null || swift build -c release --product heapsnap_preload
  export HEAPSNAP_LIB="$(swift build -c release --show-bin-path)/libheapsnap_preload.so"
  HEAPSNAP_BIN="$(swift build --show-bin-path)"
  export HEAPSNAP_BIN
}

# The real-service tests (Tests/ShimTests/FlaskServiceTests.swift) and Scripts/bench-leaks: a virtual
# environment with pinned gunicorn and Flask from PyPI, made with Debian's python3 (else pyenv's
# 3.11) and cached in .build/service-venv; made again only when the pins change. Sets
# HEAPSNAP_SERVICE_VENV, or, when it cannot be made, HEAPSNAP_SERVICE_VENV_ERROR (those tests then
# fail and say why) and returns 1.
HEAPSNAP_SERVICE_PINS="gunicorn==23.0.0 flask==3.1.0"
ensure_service_venv() {
  local venv="$PWD/.build/service-venv" python log
  if [ "$(cat "$venv/.heapsnap-pins" 2>/dev/null)" = "$HEAPSNAP_SERVICE_PINS" ] && [ -x "$venv/bin/gunicorn" ]; then
    export HEAPSNAP_SERVICE_VENV="$venv"
    return 0
  fi
  python=/usr/bin/python3
  "$python" -c 'import venv, ensurepip' 2>/dev/null || python="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3 2>/dev/null | tail -1)"
  log="$(mktemp)"
  rm -rf "$venv"
  if [ -n "$python" ] && "$python" -m venv "$venv" >"$log" 2>&1 &&
     "$venv/bin/pip" install -q --disable-pip-version-check $HEAPSNAP_SERVICE_PINS >>"$log" 2>&1; then
    echo "$HEAPSNAP_SERVICE_PINS" >"$venv/.heapsnap-pins"
    export HEAPSNAP_SERVICE_VENV="$venv"
    rm -f "$log"
    return 0
  fi
  export HEAPSNAP_SERVICE_VENV_ERROR="Scripts/lib.sh could not make $venv with ${python:-no python with venv} ($(tail -1 "$log"))"
  echo "heapsnap: $HEAPSNAP_SERVICE_VENV_ERROR" >&2
  rm -f "$log"
  return 1
}
