# ruff: noqa: RUF001, E501 (Russian prose; sentences kept whole on one line)
"""Text for the rendered eval pages (testkit/eval_pages.py): prose and form fields, English and
Russian, written for this project and placed in the public domain (CC0).
"""

from __future__ import annotations

PROSE = {
    "en": [
        "The river rose slowly through the night, and by morning the lower fields were under water.",
        "Farmers moved their cattle to the hill behind the church, where the ground stayed dry.",
        "A small boat carried letters and bread between the two halves of the village.",
        "The schoolmaster kept a record of the water level, measured every hour on a painted post.",
        "On the third day the rain stopped, and the sun showed a grey lake where the roads had been.",
        "Children counted the roofs that still stood above the flood and wrote the numbers on slates.",
        "The mill lost its wheel, but the miller said that stone and oak would outlast any river.",
        "When the water fell, it left a line of mud on every wall, exactly at the height of a man.",
        "Travellers from the north brought news that the bridge at the county town had held.",
        "The council met in the station hall and agreed to raise the embankment by two feet.",
        "Each household gave three days of labour, and the work was finished before the first frost.",
        "Years later the painted post still stood by the school, its highest mark faded but legible.",
        "Old people told the story in winter, and each time the flood grew a little deeper.",
        "The records of the schoolmaster were found in a drawer and printed in the local paper.",
    ],
    "ru": [
        "Ночью река медленно поднималась, и к утру нижние поля оказались под водой.",
        "Крестьяне перегнали скот на холм за церковью, где земля оставалась сухой.",
        "Маленькая лодка возила письма и хлеб между двумя половинами деревни.",
        "Учитель каждый час записывал уровень воды по отметкам на крашеном столбе.",
        "На третий день дождь кончился, и солнце осветило серое озеро на месте дорог.",
        "Дети считали крыши, которые ещё стояли над водой, и писали числа на грифельных досках.",
        "Мельница лишилась колеса, но мельник сказал, что камень и дуб переживут любую реку.",
        "Когда вода спала, на каждой стене осталась полоса ила ровно в человеческий рост.",
        "Путники с севера рассказали, что мост у уездного города выдержал напор воды.",
        "Совет собрался в зале станции и решил поднять насыпь на два фута.",
        "Каждый двор дал три дня работы, и насыпь закончили до первых заморозков.",
        "Много лет спустя крашеный столб всё ещё стоял у школы, и верхняя отметка была видна.",
        "Старики рассказывали эту историю зимой, и каждый раз наводнение становилось глубже.",
        "Записи учителя нашли в ящике стола и напечатали в местной газете.",
    ],
}

TITLES = {
    "en": ["Notes on the Spring Flood", "Report of the Village Council", "Delivery Notice"],
    "ru": ["Записки о весеннем паводке", "Отчёт сельского совета", "Уведомление о доставке"],
}

# Key-value rows of a form: (key, value); the value column starts at a fixed x.
FORM_FIELDS = {
    "en": [
        ("Company:", "Northfield Timber Ltd"),
        ("Invoice number:", "INV-20461-B"),
        ("Date of issue:", "14 March 2026"),
        ("Customer:", "Oakridge Building Supplies"),
        ("Address:", "12 Mill Lane, Westbury"),
        ("Pages transmitted:", "3 of 3"),
        ("Payment due:", "30 days net"),
    ],
    "ru": [
        ("Организация:", "ООО «Северный лес»"),
        ("Номер счёта:", "СЧ-20461-Б"),
        ("Дата выдачи:", "14 марта 2026 г."),
        ("Покупатель:", "ООО «Дубрава Строй»"),
        ("Адрес:", "ул. Мельничная, д. 12"),
        ("Передано страниц:", "3 из 3"),
        ("Срок оплаты:", "30 дней"),
    ],
}

TABLE = {
    "en": [
        ("Item", "Quantity", "Price", "Amount"),
        ("Oak boards", "40", "12.50", "500.00"),
        ("Pine beams", "12", "31.20", "374.40"),
        ("Roof battens", "150", "1.85", "277.50"),
        ("Delivery", "1", "95.00", "95.00"),
    ],
    "ru": [
        ("Товар", "Количество", "Цена", "Сумма"),
        ("Доска дубовая", "40", "12,50", "500,00"),
        ("Брус сосновый", "12", "31,20", "374,40"),
        ("Рейка кровельная", "150", "1,85", "277,50"),
        ("Доставка", "1", "95,00", "95,00"),
    ],
}

NOTICE = {
    "en": [
        "Please check the goods on delivery.",
        "Claims are accepted within seven days.",
    ],
    "ru": [
        "Проверьте товар при получении.",
        "Претензии принимаются в течение семи дней.",
    ],
}

MARGIN_NUMBER = {"en": "Doc. No. 2026-0415-17", "ru": "Документ № 2026-0415-17"}
