// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/**
 * @title Civil calendar
 * @notice Dates of the proleptic Gregorian calendar in UTC, as integer maths on Unix timestamps from
 * 1970-01-01: month arithmetic for monthly schedules and the day counts interest is charged on.
 *
 * The conversions between a day number and (year, month, day) are Howard Hinnant's `days_from_civil`
 * and `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms",
 * https://howardhinnant.github.io/date_algorithms.html), restricted to days on or after 1970-01-01 so
 * that every quantity is unsigned. The year is shifted to start on 1 March, so that the leap day is the
 * last day of the shifted year and a month's first day is (153 * month + 2) / 5 days into it.
 */
library Calendar {
    uint256 internal constant DAY = 1 days;
    /// @dev Days from 0000-03-01 to 1970-01-01 in the shifted calendar (Hinnant's 719468).
    uint256 private constant _EPOCH_SHIFT = 719_468;
    /// @dev Days in 400 Gregorian years: the calendar repeats with this period (an "era").
    uint256 private constant _DAYS_PER_ERA = 146_097;

    /// @notice A span whose end precedes its start.
    error CalendarEndBeforeStart(uint256 start, uint256 end);

    /**
     * @notice Days since 1970-01-01 of the date `year`-`month`-`day`.
     * @dev Expects month 1..12 and day 1..31 (not checked: callers pass dates they computed); a date
     * before 1970 reverts on the last subtraction.
     */
    function daysFromCivil(uint256 year, uint256 month, uint256 day) internal pure returns (uint256) {
        // The shifted year begins in March: January and February belong to the previous one.
        uint256 y = month <= 2 ? year - 1 : year;
        uint256 daysToShiftedYear;
        // Unchecked: every term is bounded for a valid month and day, and the products cannot overflow for
        // any year below 2^200. Hinnant's era * 146097 + yearOfEra * 365 + leap days, with the era folded
        // in (146097 = 400 * 365 + 97): the same number, and no multiplication of a quotient.
        unchecked {
            uint256 dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1; // [0, 365]
            daysToShiftedYear = y * 365 + y / 4 - y / 100 + y / 400 + dayOfYear;
        }
        return daysToShiftedYear - _EPOCH_SHIFT;
    }

    /// @notice The date (year, month 1..12, day 1..31) `daysSinceEpoch` days after 1970-01-01.
    function civilFromDays(uint256 daysSinceEpoch) internal pure returns (uint256 year, uint256 month, uint256 day) {
        // Unchecked: each subtraction takes away at most what the previous line left (ranges in the
        // comments), and nothing overflows for a day number below 2^200 (timestamps are below 2^40).
        // The divisions are floors by design (they pick the era, the year of the era and the month), so
        // multiplying their quotients back loses nothing that should have been kept.
        // slither-disable-start divide-before-multiply
        unchecked {
            uint256 z = daysSinceEpoch + _EPOCH_SHIFT;
            uint256 era = z / _DAYS_PER_ERA;
            uint256 dayOfEra = z % _DAYS_PER_ERA; // [0, 146096]
            // Leap days removed before dividing by 365: one every 4 years, none every 100, one every 400.
            uint256 yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365; // [0, 399]
            uint256 dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100); // [0, 365]
            uint256 shiftedMonth = (5 * dayOfYear + 2) / 153; // [0, 11], 0 = March
            day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1;
            month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9;
            year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
        }
        // slither-disable-end divide-before-multiply
    }

    /// @notice Whether `year` has a 29 February.
    function isLeapYear(uint256 year) internal pure returns (bool) {
        return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    }

    /// @notice Number of days in `month` (1..12) of `year`.
    function daysInMonth(uint256 year, uint256 month) internal pure returns (uint256) {
        if (month == 2) return isLeapYear(year) ? 29 : 28;
        // April, June, September and November have 30 days; the other months 31.
        return (month == 4 || month == 6 || month == 9 || month == 11) ? 30 : 31;
    }

    /**
     * @notice The same day of the month `k` months after `timestamp`, at the same time of day; the last
     * day of the month when the target month is shorter (31 January + 1 month = 28 or 29 February).
     * @dev The clamp applies to this one result only: a schedule computes installment k from the
     * disbursement as addMonths(disbursedAt, k), never from installment k - 1, so 31 January gives
     * 28 February, 31 March, 30 April, 31 May...
     */
    function addMonths(uint256 timestamp, uint256 k) internal pure returns (uint256) {
        (uint256 year, uint256 month, uint256 day) = civilFromDays(timestamp / DAY);
        return addMonthsToDate(year, month, day, timestamp % DAY, k);
    }

    /**
     * @notice addMonths from a date already split into (year, month, day) and seconds into the day: lets
     * a caller that needs several dates from one start convert it once.
     */
    function addMonthsToDate(uint256 year, uint256 month, uint256 day, uint256 timeOfDay, uint256 k)
        internal
        pure
        returns (uint256)
    {
        uint256 monthIndex = year * 12 + (month - 1) + k; // months since year 0, January
        uint256 newYear;
        uint256 newMonth;
        // Unchecked: a quotient and a remainder plus one; neither can overflow.
        unchecked {
            newYear = monthIndex / 12;
            newMonth = monthIndex % 12 + 1;
        }
        uint256 lastDay = daysInMonth(newYear, newMonth);
        return daysFromCivil(newYear, newMonth, day < lastDay ? day : lastDay) * DAY + timeOfDay;
    }

    /// @notice Calendar days from the UTC date of `start` to that of `end` (midnights crossed).
    function daysBetween(uint256 start, uint256 end) internal pure returns (uint256) {
        if (end < start) revert CalendarEndBeforeStart(start, end);
        return end / DAY - start / DAY;
    }

    /**
     * @notice Year fraction of [start, end) by actual/365 fixed: actual days over 365, leap years or not.
     * @return numerator days between the UTC dates
     * @return denominator 365
     */
    function actual365Fixed(uint256 start, uint256 end) internal pure returns (uint256 numerator, uint256 denominator) {
        return (daysBetween(start, end), 365);
    }

    /**
     * @notice Year fraction of [start, end) by 30E/360, the Eurobond basis of the 2006 ISDA Definitions,
     * section 4.16(g): 360 * (Y2 - Y1) + 30 * (M2 - M1) + (D2 - D1) days over 360, where a day 31 of
     * either date counts as 30. February is not adjusted (28 February to 31 March is 32 days).
     * @return numerator the 30E/360 day count
     * @return denominator 360
     */
    function thirtyE360(uint256 start, uint256 end) internal pure returns (uint256 numerator, uint256 denominator) {
        if (end < start) revert CalendarEndBeforeStart(start, end);
        (uint256 y1, uint256 m1, uint256 d1) = civilFromDays(start / DAY);
        (uint256 y2, uint256 m2, uint256 d2) = civilFromDays(end / DAY);
        if (d1 == 31) d1 = 30;
        if (d2 == 31) d2 = 30;
        // Summed before subtracting: end >= start makes the total non-negative, though a part may not be.
        return (360 * y2 + 30 * m2 + d2 - (360 * y1 + 30 * m1 + d1), 360);
    }
}
