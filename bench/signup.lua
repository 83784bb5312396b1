-- wrk script: sign-up POSTs, each with a new address, one CSRF token and
-- session cookie fetched beforehand (BENCH_TOKEN, BENCH_COOKIE).
local token = os.getenv("BENCH_TOKEN")
local cookie = os.getenv("BENCH_COOKIE")
local threads = 0
local run = os.time()

-- Each thread gets its own prefix from the main state: the run's start time and
-- its number, so no two requests of one database's runs share an address.
function setup(thread)
  threads = threads + 1
  thread:set("prefix", "b" .. run .. "t" .. threads .. "x")
end

local counter = 0

request = function()
  counter = counter + 1
  local body = "csrf_token=" .. token .. "&email=" .. prefix .. counter ..
    "%40example.com&first_name=Bench"
  return wrk.format("POST", "/free-plan", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie,
  }, body)
end
