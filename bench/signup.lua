-- wrk script: sign-up POSTs, each with a new address, as a browser on the site
-- sends them (no token or cookie: the landing page is the same for everyone and
-- the post is checked by where it comes from, funnel/web/public/crossorigin.py).
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
  local body = "email=" .. prefix .. counter .. "%40example.com&first_name=Bench"
  return wrk.format("POST", "/free-plan", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Sec-Fetch-Site"] = "same-origin",
  }, body)
end
