"""English date and time formats that always show the minutes.

Django's English formats use "P", which prints 1:00 as "1 a.m." and 0:00 as "midnight". Administrators compare
times in lists and audit entries, so every time here prints its minutes ("1:00 a.m."). Django's US date order
(month/day/year) stays. Formats not named here fall back to Django's English module.
"""

# "g:i a" prints the hour without a leading zero, the minutes and "a.m."/"p.m.", following Django's "P" otherwise.
TIME_FORMAT = "g:i a"
DATETIME_FORMAT = "N j, Y, g:i a"
SHORT_DATETIME_FORMAT = "m/d/Y g:i a"
