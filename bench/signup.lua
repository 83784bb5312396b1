-- wrk script: sign-up POSTs, each with a new address, one CSRF token and
-- session cookie fetched beforehand (BENCH_TOKEN, BENCH_COOKIE).
local token = os.getenv("BENCH_TOKEN")
local cookie = os.getenv("BENCH_COOKIE")
local counter = 0
local tid = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  math.randomseed(os.time() + tid)
  tid = math.random(1, 1000000000)
end

request = function()
  counter = counter + 1
  local body = "csrf_token=" .. token .. "&email=b" .. tid .. "x" .. counter ..
    "%40example.com&first_name=Bench"
  return wrk.format("POST", "/free-plan", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie,
  }, body)
end
